"""Comparing alphas."""

from __future__ import annotations

import numpy as np


def soft_iou(pred: np.ndarray, gt: np.ndarray, empty: float = 1.0) -> float:
    """Soft IoU ``Σ min(pred, gt) / Σ max(pred, gt)`` of two ``H×W`` alphas in ``[0, 1]``.

    Args:
        pred: ``H×W`` alpha.
        gt: ``H×W`` alpha.
        empty: value when both alphas are zero everywhere (1.0: identical; LayerD's layer
            metric uses 0.0).

    Raises:
        ValueError: the shapes differ.
    """
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if p.shape != g.shape:
        raise ValueError(f"alpha shapes differ: {p.shape} vs {g.shape}")
    union = float(np.maximum(p, g).sum())
    return float(np.minimum(p, g).sum() / union) if union > 0 else float(empty)


def same_object(alpha_i: np.ndarray, alpha_j: np.ndarray, threshold: float = 0.8) -> float | None:
    """Soft IoU of two alphas when it reaches ``threshold`` (the same object), else None."""
    iou = soft_iou(alpha_i, alpha_j, empty=0.0)
    return iou if iou >= threshold else None
