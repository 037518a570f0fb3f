"""Comparing prompts."""

from __future__ import annotations

import numpy as np

from layerkit.ops.boxes import box_iou
from layerkit.types import Prompt


def prompts_equal(p: Prompt, q: Prompt, box_iou_min: float = 0.95, point_tol: float = 1.0) -> bool:
    """True when two prompts ask for the same thing (same text, points within ``point_tol`` px,
    same mask, boxes matching with IoU ≥ ``box_iou_min``)."""
    if (p.text or "").lower() != (q.text or "").lower():
        return False
    for a, b in ((p.points, q.points), (p.boxes, q.boxes), (p.mask, q.mask)):
        if (a is None) != (b is None):
            return False
    if p.points is not None:
        if p.points.shape != q.points.shape or not np.array_equal(p.labels, q.labels):  # type: ignore[union-attr]
            return False
        if np.abs(p.points - q.points).max() > point_tol:  # type: ignore[operator]
            return False
    if p.boxes is not None:
        if p.boxes.shape != q.boxes.shape:  # type: ignore[union-attr]
            return False
        for a, b in zip(p.boxes, q.boxes):  # type: ignore[arg-type]
            if box_iou(tuple(a), tuple(b)) < box_iou_min:  # type: ignore[arg-type]
                return False
    if p.mask is not None and (p.mask.shape != q.mask.shape or not np.array_equal(p.mask, q.mask)):  # type: ignore[union-attr]
        return False
    return True
