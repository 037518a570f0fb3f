"""Box helpers (xyxy pixels, exclusive ends), shared by grounding, proposal, ordering and evaluation.

Batched IoU and non-maximum suppression come from ``torchvision.ops``; these are the scalar
forms for single boxes (``None`` for "no box").
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]


def select_box(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray | None = None,
               labels: np.ndarray | None = None) -> int | None:
    """Index of the box to use for an object, or None if there is none.

    The highest-scoring box that contains every positive point (and no negative point) wins;
    if no box does, the highest-scoring box containing the most positive points; with no points,
    the highest-scoring box.

    Args:
        boxes: ``N×4`` xyxy.
        scores: ``N``.
        points: optional ``K×2`` xy.
        labels: optional ``K`` labels (1 positive, 0 negative); all positive if omitted.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(boxes) == 0:
        return None
    if points is None or len(points) == 0:
        return int(np.argmax(scores))
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    lab = np.ones(len(pts), int) if labels is None else np.asarray(labels).reshape(-1)
    inside = ((pts[None, :, 0] >= boxes[:, None, 0]) & (pts[None, :, 0] < boxes[:, None, 2])
              & (pts[None, :, 1] >= boxes[:, None, 1]) & (pts[None, :, 1] < boxes[:, None, 3]))
    pos_hits = inside[:, lab == 1].sum(axis=1)
    neg_hits = inside[:, lab == 0].sum(axis=1)
    # lexicographic: most positive points, fewest negative points, then score
    order = np.lexsort((scores, -neg_hits, pos_hits))
    return int(order[-1])


def box_intersection(a: Box | None, b: Box | None) -> Box | None:
    """Intersection of two xyxy boxes, or None when they do not overlap."""
    if a is None or b is None:
        return None
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def box_union(a: Box | None, b: Box | None) -> Box | None:
    """Smallest box holding both (None entries are ignored)."""
    if a is None or b is None:
        return a if b is None else b
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def box_area(b: Box | None) -> int:
    return 0 if b is None else max(0, b[2] - b[0]) * max(0, b[3] - b[1])


def box_iou(a: Box | None, b: Box | None) -> float:
    """Intersection over union of two xyxy boxes (0 when either is None)."""
    inter = box_area(box_intersection(a, b))
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0
