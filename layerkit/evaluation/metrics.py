"""Image-matting and layer metrics (numpy, float arrays in ``[0, 1]``, HWC).

The alpha metrics follow the evaluation code released with Deep Image Matting (Xu et al.,
CVPR 2017; ``compute_sad_loss``, ``compute_mse_loss``, ``compute_gradient_loss``,
``compute_connectivity_error``), rewritten from their definitions:

* **SAD** ``Σ |α − α*|`` over the evaluated pixels, reported divided by 1000;
* **MSE** ``Σ (α − α*)² / N`` over the evaluated pixels (we report it ×1000);
* **gradient error** ``Σ (‖∇_σ α‖ − ‖∇_σ α*‖)²`` with first-order Gaussian-derivative filters of
  ``σ = 1.4`` (replicate border), reported divided by 1000;
* **connectivity error** with threshold step 0.1 and 4-connectivity, reported divided by 1000.

Every function takes a ``region`` (``H×W`` bool, the pixels that are summed: the trimap's unknown
band in matting benchmarks, the whole image otherwise). Alphas are ``H×W`` float in ``[0, 1]``;
the DIM code divides 8-bit mattes by 255 first (its ``mat2gray`` in the gradient error is the
same scaling whenever the matte spans 0…1), which callers do by loading PNGs with
:func:`layerkit.io.image.load_mask`.
"""

from __future__ import annotations

import math

import numpy as np

from layerkit.ops.masks import soft_iou  # noqa: F401 - one definition, re-exported for the metrics

#: PSNR of identical images is infinite; it is reported as this many dB so means stay finite.
PSNR_CAP_DB = 100.0


def _region(region: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if region is None:
        return np.ones(shape, bool)
    r = np.asarray(region, bool)
    if r.shape != shape:
        raise ValueError(f"region is {r.shape} but the alpha is {shape}; they must match")
    return r


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(f"alphas must be two H×W arrays of one size, got {p.shape} and {g.shape}")
    return p, g


def sad(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> float:
    """Sum of absolute differences over ``region``, divided by 1000 (DIM convention).

    Args:
        pred: ``H×W`` predicted alpha in ``[0, 1]``.
        gt: ``H×W`` ground-truth alpha in ``[0, 1]``.
        region: ``H×W`` bool pixels to sum (default: all).

    Returns:
        ``Σ |pred − gt| / 1000`` (0 for an empty region).
    """
    p, g = _pair(pred, gt)
    return float(np.abs(p - g)[_region(region, p.shape)].sum() / 1000.0)


def mse(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean squared error over ``region`` (``Σ (pred − gt)² / N``); NaN for an empty region."""
    p, g = _pair(pred, gt)
    r = _region(region, p.shape)
    n = int(r.sum())
    return float(((p - g) ** 2)[r].sum() / n) if n else float("nan")


def gaussian_gradient_kernels(sigma: float = 1.4, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """1-D factors of the DIM gradient filter.

    The 2-D x-derivative kernel is ``outer(g, dg)`` (``g`` along rows/y, ``dg`` along columns/x)
    with ``g(u) = exp(−u²/2σ²)/(σ√2π)``, ``dg(u) = −u·g(u)/σ²``, half-size
    ``⌈σ·sqrt(−2·ln(√(2π)·σ·ε))⌉`` and unit Frobenius norm; the y kernel is its transpose.

    Returns:
        ``(g, dg)``: two 1-D float64 arrays of length ``2·halfsize + 1``, scaled so that
        ``outer(g, dg)`` has unit norm.
    """
    half = int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon))))
    u = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(u ** 2) / (2.0 * sigma ** 2)) / (sigma * math.sqrt(2.0 * math.pi))
    dg = -u * g / sigma ** 2
    norm = math.sqrt(float((g ** 2).sum() * (dg ** 2).sum()))  # ‖outer(g, dg)‖_F
    return g, dg / norm


def gradient_magnitude(alpha: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """``‖∇_σ α‖``: Gaussian-derivative gradient magnitude, replicate border, true convolution.

    Args:
        alpha: ``H×W`` float.
        sigma: standard deviation of the Gaussian in pixels.

    Returns:
        ``H×W`` float64 gradient magnitude.
    """
    from scipy import ndimage  # imported here: the CLI builds its parsers from this package

    a = np.asarray(alpha, np.float64)
    g, dg = gaussian_gradient_kernels(sigma)
    gx = ndimage.convolve1d(ndimage.convolve1d(a, dg, axis=1, mode="nearest"), g, axis=0, mode="nearest")
    gy = ndimage.convolve1d(ndimage.convolve1d(a, g, axis=1, mode="nearest"), dg, axis=0, mode="nearest")
    return np.sqrt(gx ** 2 + gy ** 2)


def gradient_error(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, sigma: float = 1.4) -> float:
    """Gradient error ``Σ (‖∇_σ pred‖ − ‖∇_σ gt‖)²`` over ``region``, divided by 1000.

    The gradients are taken on the whole image (so pixels just outside ``region`` count as
    neighbours), and only the sum is restricted to ``region``.
    """
    p, g = _pair(pred, gt)
    err = (gradient_magnitude(p, sigma) - gradient_magnitude(g, sigma)) ** 2
    return float(err[_region(region, p.shape)].sum() / 1000.0)


def connectivity_error(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, step: float = 0.1) -> float:
    """Connectivity error (Rhemann et al. 2009, DIM implementation), divided by 1000.

    For each threshold ``t`` in ``step, 2·step, …, 1`` the largest 4-connected component Ω of
    ``(pred ≥ t) ∧ (gt ≥ t)`` is found; a pixel's level ``l`` is the last threshold below the
    first one at which it leaves Ω (1 if it never leaves). With ``d = α − l``, the degree of
    connectivity is ``φ = 1 − d·[d ≥ 0.15]``, and the error is ``Σ |φ(pred) − φ(gt)|`` over
    ``region``. When ``(pred ≥ t) ∧ (gt ≥ t)`` is empty, Ω is empty.

    Args:
        pred: ``H×W`` predicted alpha in ``[0, 1]``.
        gt: ``H×W`` ground-truth alpha in ``[0, 1]``.
        region: ``H×W`` bool pixels to sum (default: all).
        step: threshold step.

    Returns:
        The error divided by 1000.
    """
    from scipy import ndimage

    p, g = _pair(pred, gt)
    n_steps = int(round(1.0 / step))
    thresholds = np.round(np.arange(n_steps + 1) * step, 10)
    level = np.full(p.shape, -1.0)
    for i in range(1, len(thresholds)):
        t = thresholds[i]
        labels, n = ndimage.label((p >= t) & (g >= t))  # default structure: 4-connectivity
        if n:
            sizes = np.bincount(labels.ravel())[1:]
            omega = labels == (int(np.argmax(sizes)) + 1)
        else:
            omega = np.zeros(p.shape, bool)
        leaving = (level == -1) & ~omega
        level[leaving] = thresholds[i - 1]
    level[level == -1] = 1.0
    dp, dg = p - level, g - level
    phi_p = 1.0 - dp * (dp >= 0.15)
    phi_g = 1.0 - dg * (dg >= 0.15)
    return float(np.abs(phi_p - phi_g)[_region(region, p.shape)].sum() / 1000.0)


def weighted_l1(pred_rgb: np.ndarray, gt_rgb: np.ndarray, weight: np.ndarray) -> float:
    """Colour L1 weighted per pixel: ``Σ w·|F − F*| / (3·Σ w)`` over RGB.

    Used with ``weight = α*`` for the foreground colour error (pixels the object does not cover
    do not count). NaN when the weights sum to zero.

    Args:
        pred_rgb: ``H×W×3`` float in ``[0, 1]``.
        gt_rgb: ``H×W×3`` float in ``[0, 1]``.
        weight: ``H×W`` non-negative weights.
    """
    p, g = np.asarray(pred_rgb, np.float64), np.asarray(gt_rgb, np.float64)
    w = np.asarray(weight, np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[:2] != w.shape:
        raise ValueError(f"expected two H×W×3 images and an H×W weight, got {p.shape}, {g.shape}, {w.shape}")
    total = float(w.sum())
    if total <= 0:
        return float("nan")
    return float((np.abs(p - g).sum(axis=2) * w).sum() / (3.0 * total))


def masked_l1(pred_rgb: np.ndarray, gt_rgb: np.ndarray, mask: np.ndarray) -> float:
    """Mean over ``mask`` pixels of the per-pixel RGB mean ``|F − F*|`` (LayerD's RGB L1).

    Returns 0 for an empty mask, as LayerD's implementation does (its ``ε`` in the denominator).
    """
    m = np.asarray(mask, bool)
    n = int(m.sum())
    if n == 0:
        return 0.0
    d = np.abs(np.asarray(pred_rgb, np.float64) - np.asarray(gt_rgb, np.float64)).mean(axis=2)
    return float(d[m].sum() / n)


def psnr_db(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, cap: float = PSNR_CAP_DB) -> float:
    """PSNR in dB of two ``[0, 1]`` images over ``region`` (``H×W`` bool), capped at ``cap``.

    Returns:
        ``10·log10(1 / MSE)`` (``cap`` when the images are identical); NaN for an empty region.
    """
    from layerkit.ops.compositing import psnr

    value = psnr(pred, gt, region)
    return float(min(value, cap)) if not math.isnan(value) else value


def alpha_metrics(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None,
                  connectivity: bool = False) -> dict[str, float]:
    """The standard alpha metrics in one dict (SAD/1000, MSE×1e3, gradient/1000, [connectivity/1000]).

    Args:
        pred: ``H×W`` predicted alpha in ``[0, 1]``.
        gt: ``H×W`` ground-truth alpha in ``[0, 1]``.
        region: ``H×W`` bool evaluated pixels (default: all).
        connectivity: also compute the (slower) connectivity error.

    Returns:
        ``{"sad", "mse_e3", "grad", "conn"?}``.
    """
    out = {"sad": sad(pred, gt, region), "mse_e3": mse(pred, gt, region) * 1e3, "grad": gradient_error(pred, gt, region)}
    if connectivity:
        out["conn"] = connectivity_error(pred, gt, region)
    return out
