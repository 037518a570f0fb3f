"""Alpha compositing maths (numpy, straight alpha, HWC float32 in ``[0, 1]``)."""

from __future__ import annotations

import numpy as np


def over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Porter-Duff "over" of two straight-alpha images.

    Args:
        top: ``H×W×4`` straight RGBA.
        bottom: ``H×W×4`` straight RGBA or ``H×W×3`` opaque RGB.

    Returns:
        ``H×W×4`` straight RGBA if ``bottom`` has alpha, else ``H×W×3`` RGB.
    """
    _check_hwc(top, (4,), "top")
    _check_hwc(bottom, (3, 4), "bottom")
    if top.shape[:2] != bottom.shape[:2]:
        raise ValueError(f"top is {top.shape[:2]} but bottom is {bottom.shape[:2]}; layers must share the canvas size")
    at = top[..., 3:4]
    if bottom.shape[2] == 3:
        return at * top[..., :3] + (1.0 - at) * bottom
    ab = bottom[..., 3:4]
    a = at + ab * (1.0 - at)
    premul = at * top[..., :3] + (1.0 - at) * ab * bottom[..., :3]
    rgb = np.divide(premul, a, out=np.zeros_like(premul), where=a > 1e-8)
    return np.concatenate([np.clip(rgb, 0.0, 1.0), a], axis=2).astype(np.float32)


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``C = α·F + (1 − α)·B`` (LayeringDiff Eq. 1).

    Args:
        foreground: ``H×W×3`` straight foreground colour.
        alpha: ``H×W`` or ``H×W×1`` in ``[0, 1]``.
        background: ``H×W×3``.
    """
    a = alpha[..., None] if alpha.ndim == 2 else alpha
    return (a * foreground + (1.0 - a) * background).astype(np.float32)


def solve_foreground(image: np.ndarray, alpha: np.ndarray, background: np.ndarray, foreground: np.ndarray | None = None,
                     min_alpha: float = 1e-3) -> np.ndarray:
    """Re-solve ``F = (C − (1 − α)·B) / α`` so that the stack recomposes ``C``.

    Where ``α < min_alpha`` the division is meaningless; there the given ``foreground`` (or 0) is
    kept. The result is clipped to ``[0, 1]``, which is the only source of recomposition error
    (:func:`solve_layers` removes it by moving the background instead).

    Args:
        image: ``H×W×3`` composite ``C``.
        alpha: ``H×W`` matte.
        background: ``H×W×3`` final background ``B``.
        foreground: optional ``H×W×3`` estimate used where ``α`` is (almost) zero.
        min_alpha: smallest alpha at which ``F`` is solved.

    Returns:
        ``H×W×3`` float32 straight foreground colour.
    """
    return np.clip(_unclipped_foreground(image, alpha, background, foreground, min_alpha), 0.0, 1.0).astype(np.float32)


def _unclipped_foreground(image: np.ndarray, alpha: np.ndarray, background: np.ndarray, foreground: np.ndarray | None,
                          min_alpha: float) -> np.ndarray:
    a = alpha[..., None]
    num = image - (1.0 - a) * background
    f = np.divide(num, a, out=np.zeros_like(num, dtype=np.float32), where=a >= min_alpha)
    if foreground is not None:
        f = np.where(a >= min_alpha, f, foreground)
    return f


def solve_layers(image: np.ndarray, alpha: np.ndarray, background: np.ndarray, foreground: np.ndarray | None = None,
                 min_alpha: float = 1e-3, background_below: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Re-solve ``F`` as in :func:`solve_foreground`, and ``B`` where that ``F`` had to be clipped.

    Where ``F`` leaves ``[0, 1]`` the background estimate cannot be seen through ``α`` as ``C``.
    If there the layer is mostly transparent (``α < background_below``: the image shows more
    background than object), the background is re-solved from the clipped ``F``:
    ``B = (C − α·F) / (1 − α)``. That ``B`` always lies in ``[0, 1]``, between the estimate and
    ``C``, so the pair recomposes ``C`` to float precision. Where the layer is mostly opaque the
    estimate is kept (there ``C`` says little about ``B``; moving it put object colour into the
    background: on the 30 dev composites, B PSNR over the occluded region 16.46 → 15.95 dB with
    ``background_below=1``, 16.45 dB with 0.5, recomposition 54.0 → 64.8 dB).

    Returns:
        ``(F, B)``, ``H×W×3`` float32 each.
    """
    raw = _unclipped_foreground(image, alpha, background, foreground, min_alpha)
    f = np.clip(raw, 0.0, 1.0).astype(np.float32)
    a = alpha[..., None]
    fix = (a >= min_alpha) & (a < min(background_below, 1.0)) & (f != raw)
    b = np.asarray(background, np.float32)
    if fix.any():
        b_new = np.divide(image - a * f, 1.0 - a, out=np.zeros_like(raw, dtype=np.float32), where=a < 1.0)
        b = np.where(fix, np.clip(b_new, 0.0, 1.0), b).astype(np.float32)
    return f, b


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB between two ``[0, 1]`` images, optionally over ``mask`` (``H×W`` bool); inf if equal."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if mask is not None:
        m = np.asarray(mask, bool)
        if not m.any():
            return float("nan")
        d = d[m]
    mse = float(d.mean())
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def _check_hwc(x: np.ndarray, channels: tuple[int, ...], name: str) -> None:
    if x.ndim != 3 or x.shape[2] not in channels:
        raise ValueError(f"{name} must be H×W×{'|'.join(map(str, channels))}, got shape {x.shape}")


#: resampling of :func:`resize_rgba`: ``auto`` (OpenCV area when shrinking, bilinear when enlarging),
#: ``cubic`` (area / bicubic), ``lanczos`` (PIL's Lanczos, per channel in float)
RESIZE_FILTERS = ("auto", "cubic", "lanczos")


def resize_rgba(rgba: np.ndarray, size: tuple[int, int], filter: str = "auto") -> np.ndarray:
    """Resize a straight-alpha layer by resampling premultiplied colour (no dark fringes).

    Args:
        rgba: ``h×w×4`` straight RGBA in ``[0, 1]``.
        size: ``(H, W)`` of the result (each at least 1).
        filter: one of :data:`RESIZE_FILTERS`.

    Returns:
        ``H×W×4`` float32 straight RGBA, clipped to ``[0, 1]``; colour 0 where alpha ≤ 1e-6.

    Raises:
        ValueError: an unknown filter or a non-RGBA input.
    """
    _check_hwc(rgba, (4,), "rgba")
    if filter not in RESIZE_FILTERS:
        raise ValueError(f"unknown resize filter {filter!r}; valid: {', '.join(RESIZE_FILTERS)}")
    h, w = max(1, int(size[0])), max(1, int(size[1]))
    if rgba.shape[:2] == (h, w):
        return np.clip(rgba, 0.0, 1.0).astype(np.float32)
    a = rgba[..., 3:4].astype(np.float32)
    prem = np.concatenate([rgba[..., :3] * a, a], axis=2).astype(np.float32)
    if filter == "lanczos":
        from PIL import Image

        out = np.stack([np.asarray(Image.fromarray(prem[..., c], "F").resize((w, h), Image.LANCZOS), np.float32)
                        for c in range(4)], axis=2)
    else:
        import cv2

        shrink = h < rgba.shape[0] or w < rgba.shape[1]
        interp = cv2.INTER_AREA if shrink else (cv2.INTER_CUBIC if filter == "cubic" else cv2.INTER_LINEAR)
        out = cv2.resize(prem, (w, h), interpolation=interp)
    out = np.clip(out, 0.0, 1.0)
    alpha = out[..., 3:4]
    rgb = np.divide(out[..., :3], alpha, out=np.zeros_like(out[..., :3]), where=alpha > 1e-6)
    return np.concatenate([np.clip(rgb, 0.0, 1.0), alpha], axis=2).astype(np.float32)
