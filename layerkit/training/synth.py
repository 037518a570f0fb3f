"""Synthetic composites with exact ground truth (numpy + OpenCV), made on the fly for training.

One sample is an ``S×S`` window of ``C = α·F + (1 − α)·B`` built from an RGBA foreground layer
(straight alpha) and a background photo, with random scale and placement, horizontal flips and
colour jitter. Everything is ``float32`` in ``[0, 1]``, HWC; ``C`` and ``α`` are rounded to 8 bit
like real PNG data. Optionally the sample also carries the inputs a refiner sees: ``F̂``/``B̂``
from the classical decomposer (what HFA gets at inference in the ``classical`` pipeline) or
cheap degradations of the ground truth (blur + colour shift, the kind of error FBDD makes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerkit.ops.compositing import resize_rgba

#: sources of the estimated layers ``F̂``/``B̂`` fed to a refiner
HAT_SOURCES = ("none", "classical", "degrade")


@dataclass
class SynthParams:
    """How composites are drawn.

    Attributes:
        size: side ``S`` of the square sample, pixels.
        fg_scale: range of the foreground's scale relative to its file size.
        bg_scale: range of the background's scale relative to its file size (raised where the
            photo would be smaller than ``S``).
        band_prob: probability that the window is centred on the matte's soft band
            (``0 < α < 1``) rather than anywhere on the object.
        jitter: strength of the colour jitter (brightness, contrast, saturation, channel gains).
        hat: ``"none"``, ``"classical"`` or ``"degrade"`` (see the module docstring).
        hat_inpaint: the classical decomposer's inpainting method (None = its default, as in
            the ``classical`` pipeline).
        fill_foreground: extend ``F``'s colours beyond ``α = 0`` (smooth, for latent targets).
    """

    size: int = 128
    fg_scale: tuple[float, float] = (0.5, 1.5)
    bg_scale: tuple[float, float] = (0.5, 1.0)
    band_prob: float = 0.7
    jitter: float = 0.1
    hat: str = "classical"
    hat_inpaint: str | None = None
    fill_foreground: bool = False


def _resize(x: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    shrink = w < x.shape[1] or h < x.shape[0]
    return cv2.resize(x, (max(1, w), max(1, h)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def color_jitter(rgb: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Random brightness, contrast, saturation and per-channel gain; ``H×W×3`` in ``[0, 1]``."""
    if strength <= 0:
        return rgb
    s = strength
    gray = rgb.mean(axis=2, keepdims=True)
    out = gray + (rgb - gray) * rng.uniform(1 - 2 * s, 1 + 2 * s)             # saturation
    out = out.mean() + (out - out.mean()) * rng.uniform(1 - s, 1 + s)           # contrast
    out = out * rng.uniform(1 - s, 1 + s) * rng.uniform(1 - s / 2, 1 + s / 2, 3)  # brightness, gains
    return np.clip(out, 0, 1).astype(np.float32)


def fill_colors(rgb: np.ndarray, alpha: np.ndarray, levels: int = 8) -> np.ndarray:
    """Extend colours into ``α = 0`` by push-pull (alpha-weighted pyramid); visible pixels kept.

    Args:
        rgb: ``H×W×3`` straight colour (meaningless where ``alpha = 0``).
        alpha: ``H×W`` in ``[0, 1]``.
        levels: pyramid depth.
    """
    import cv2

    w = (alpha > 0).astype(np.float32)[..., None]
    if w.all() or not w.any():
        return rgb
    pyr = [(rgb * w, w)]
    for _ in range(levels):
        c, m = pyr[-1]
        if min(c.shape[:2]) < 2:
            break
        pyr.append((cv2.pyrDown(c), cv2.pyrDown(m[..., 0])[..., None]))
    c, m = pyr[-1]
    est = c / np.maximum(m, 1e-6)
    for c, m in reversed(pyr[:-1]):
        up = cv2.resize(est, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR)
        own = c / np.maximum(m, 1e-6)
        k = np.clip(m * 4, 0, 1)
        est = k * own + (1 - k) * up
    return np.where(w > 0, rgb, est).astype(np.float32)


def degrade(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur + small colour shift + noise: a cheap stand-in for a generated layer's errors."""
    import cv2

    sigma = rng.uniform(0.8, 2.5)
    y = cv2.GaussianBlur(x, (0, 0), sigma)
    y = y * rng.uniform(0.95, 1.05, 3) + rng.uniform(-0.03, 0.03, 3)
    y = y + rng.normal(0, 0.01, y.shape)
    return np.clip(y, 0, 1).astype(np.float32)


def _pick_center(alpha: np.ndarray, rng: np.random.Generator, band_prob: float) -> tuple[int, int]:
    band = (alpha > 0.02) & (alpha < 0.98)
    pool = band if band.any() and rng.random() < band_prob else alpha > 0.02
    ys, xs = np.nonzero(pool)
    if len(ys) == 0:
        return alpha.shape[0] // 2, alpha.shape[1] // 2
    i = int(rng.integers(len(ys)))
    return int(ys[i]), int(xs[i])


def make_sample(fg: np.ndarray, bg: np.ndarray, rng: np.random.Generator, p: SynthParams,
                min_visible: float = 0.1, tries: int = 8) -> dict[str, np.ndarray]:
    """One composite window in which at least ``min_visible`` of the pixels show the background
    (``α < 0.5``; up to ``tries`` placements are drawn, then the object is left out), plus the
    estimated layers if asked.

    Args:
        fg: ``h×w×4`` straight RGBA foreground layer in ``[0, 1]``.
        bg: ``H×W×3`` background photo in ``[0, 1]``.
        rng: random generator (all randomness comes from it).
        p: drawing parameters.

    Returns:
        ``image`` (``S×S×3``), ``alpha`` (``S×S``), ``fg`` (``S×S×3``, 0 where ``α = 0`` unless
        ``fill_foreground``), ``bg`` (``S×S×3``) and, when ``p.hat != "none"``, ``fg_hat`` and
        ``bg_hat`` (``S×S×3``).
    """
    for _ in range(tries):
        C, alpha, F, B = _draw(fg, bg, rng, p)
        if (alpha < 0.5).mean() >= min_visible:
            break
    else:  # the object covers the window every time: keep a background-only window
        C, alpha, F = B, np.zeros_like(alpha), np.zeros_like(F)
    a = alpha[..., None]
    if p.fill_foreground:
        F = fill_colors(F, alpha)
    out = {"image": C, "alpha": alpha, "fg": F, "bg": B}
    if p.hat == "classical":
        from layerkit.modules.decomposer.classical import ClassicalDecomposer

        out["fg_hat"], out["bg_hat"] = ClassicalDecomposer(**({"inpaint_method": p.hat_inpaint} if p.hat_inpaint else {}))(C, alpha)
    elif p.hat == "degrade":
        out["fg_hat"] = degrade(fill_colors(F, alpha), rng)
        out["bg_hat"] = np.where(a > 0, degrade(B, rng), B).astype(np.float32)
    elif p.hat != "none":
        raise ValueError(f"unknown hat source {p.hat!r}; valid: {', '.join(HAT_SOURCES)}")
    return out


def _draw(fg: np.ndarray, bg: np.ndarray, rng: np.random.Generator, p: SynthParams) -> tuple[np.ndarray, ...]:
    """``(C, α, F, B)`` of one random placement (8-bit rounded, ``F = 0`` where ``α = 0``)."""
    S = p.size
    k = max(rng.uniform(*p.bg_scale), S / min(bg.shape[:2]))
    b = _resize(bg, int(np.ceil(bg.shape[1] * k)), int(np.ceil(bg.shape[0] * k)))
    y0, x0 = int(rng.integers(b.shape[0] - S + 1)), int(rng.integers(b.shape[1] - S + 1))
    b = b[y0:y0 + S, x0:x0 + S]
    scale = rng.uniform(*p.fg_scale)
    f = resize_rgba(fg, (round(fg.shape[0] * scale), round(fg.shape[1] * scale)), "cubic")
    if rng.random() < 0.5:
        b = b[:, ::-1]
    if rng.random() < 0.5:
        f = f[:, ::-1]
    b = color_jitter(np.ascontiguousarray(b), rng, p.jitter)
    f_rgb = color_jitter(np.ascontiguousarray(f[..., :3]), rng, p.jitter)
    f_a = np.ascontiguousarray(f[..., 3])
    cy, cx = _pick_center(f_a, rng, p.band_prob)
    oy = S // 2 + int(rng.integers(-S // 4, S // 4 + 1)) - cy  # fg pixel (cy, cx) lands near the centre
    ox = S // 2 + int(rng.integers(-S // 4, S // 4 + 1)) - cx
    alpha = np.zeros((S, S), np.float32)
    F = np.zeros((S, S, 3), np.float32)
    sy0, sx0 = max(0, -oy), max(0, -ox)
    dy0, dx0 = max(0, oy), max(0, ox)
    hh = min(f_a.shape[0] - sy0, S - dy0)
    ww = min(f_a.shape[1] - sx0, S - dx0)
    if hh > 0 and ww > 0:
        alpha[dy0:dy0 + hh, dx0:dx0 + ww] = f_a[sy0:sy0 + hh, sx0:sx0 + ww]
        F[dy0:dy0 + hh, dx0:dx0 + ww] = f_rgb[sy0:sy0 + hh, sx0:sx0 + ww]
    alpha = np.round(alpha * 255) / 255
    F = np.where(alpha[..., None] > 0, np.round(F * 255) / 255, 0).astype(np.float32)
    B = (np.round(b * 255) / 255).astype(np.float32)
    a = alpha[..., None]
    C = (np.round((a * F + (1 - a) * B) * 255) / 255).astype(np.float32)
    return C, alpha.astype(np.float32), F, B
