"""Shared pieces of the effects stages: the estimate record and small map helpers."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from layerkit.ops.inpainting.smooth import inpaint_harmonic


@dataclass
class EffectEstimate:
    """One effect found next to an object (canvas-size arrays).

    Attributes:
        kind: ``"shadow"`` or ``"reflection"``.
        alpha: ``H×W`` effect alpha in ``[0, 1]``.
        color: ``H×W×3`` effect colour (0 for a shadow).
        background: ``H×W×3`` the background with the effect removed.
        score: detection score (matched-filter score, or explained variance share).
        refilled: ``H×W`` bool, where the background under the object was filled anew from the
            cleaned ground around it (None: nowhere); the layer's colour is re-solved there.
    """

    kind: str
    alpha: np.ndarray
    color: np.ndarray
    background: np.ndarray
    score: float
    refilled: np.ndarray | None = None


def odd(x: float, lo: int = 3) -> int:
    k = max(lo, int(round(x)))
    return k + 1 - k % 2


def luma(rgb: np.ndarray) -> np.ndarray:
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)


def median(y: np.ndarray, k: int) -> np.ndarray:
    """Edge-preserving median of a ``[0, 1]`` float map (8-bit, any odd ``k``), back to float."""
    u8 = np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.medianBlur(u8, k).astype(np.float32) / 255.0


def fill(x: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Harmonic fill of ``hole`` in an ``H×W`` or ``H×W×C`` map."""
    if not hole.any() or hole.all():
        return x
    return inpaint_harmonic(x if x.ndim == 3 else x[..., None], hole).reshape(x.shape)
