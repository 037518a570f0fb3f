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
    kept. The result is clipped to ``[0, 1]``, which is the only source of recomposition error.

    Args:
        image: ``H×W×3`` composite ``C``.
        alpha: ``H×W`` matte.
        background: ``H×W×3`` final background ``B``.
        foreground: optional ``H×W×3`` estimate used where ``α`` is (almost) zero.
        min_alpha: smallest alpha at which ``F`` is solved.

    Returns:
        ``H×W×3`` float32 straight foreground colour.
    """
    a = alpha[..., None]
    num = image - (1.0 - a) * background
    f = np.divide(num, a, out=np.zeros_like(num, dtype=np.float32), where=a >= min_alpha)
    if foreground is not None:
        f = np.where(a >= min_alpha, f, foreground)
    return np.clip(f, 0.0, 1.0).astype(np.float32)


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
