"""Front-to-back order of objects from their mutual occlusion, and duplicate detection.

Given one visible-object alpha per prompt (each computed on the same image), the object in
front is the one whose alpha **covers the other's overlap**: inside the intersection of the two
objects' boxes (their approximate full extents), the front object is visible and the one behind
is hidden. When both alphas claim the same pixels (a box segmenter often swallows an occluder
lying inside its box), the object whose alpha lies more inside that contested region is taken
as the front one (the occluder is wholly claimed; the object behind only partly).

Boxes are ``(x0, y0, x1, y1)`` pixels with exclusive ends; alphas are ``H×W`` float in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from layerkit.types import Prompt, alpha_bbox

Box = tuple[int, int, int, int]

#: scores of smaller magnitude are "no evidence" (a tie) when ranking
TIE = 0.05


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


def object_box(alpha: np.ndarray, prompt: Prompt | None = None, threshold: float = 0.5) -> Box | None:
    """The object's extent: the union of its prompt's box and its alpha's box (``alpha > threshold``)."""
    a = alpha_bbox(alpha, threshold)
    p = prompt.bbox() if prompt is not None else None
    return box_union(a, p)


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


def occlusion_score(alpha_i: np.ndarray, alpha_j: np.ndarray, box_i: Box | None, box_j: Box | None) -> float:
    """How much object ``i`` is in front of object ``j``: ``> 0`` in front, ``< 0`` behind, ``0`` no evidence.

    Two cues, each in ``[-1, 1]``, are summed and halved:

    * **cover**: mean alpha of ``i`` minus mean alpha of ``j`` inside ``box_i ∩ box_j``;
    * **containment**: the share of ``i``'s alpha inside the contested region
      ``min(α_i, α_j)`` minus the share of ``j``'s (zero when the alphas do not overlap).

    Args:
        alpha_i: ``H×W`` alpha of object ``i`` in ``[0, 1]``.
        alpha_j: ``H×W`` alpha of object ``j``.
        box_i: extent of ``i`` (xyxy, exclusive ends), see :func:`object_box`.
        box_j: extent of ``j``.

    Returns:
        Score in ``[-1, 1]``; antisymmetric: ``score(i, j) == -score(j, i)``.
    """
    o = box_intersection(box_i, box_j)
    if o is None:
        return 0.0
    x0, y0, x1, y1 = o
    ai, aj = alpha_i[y0:y1, x0:x1], alpha_j[y0:y1, x0:x1]
    cover = float(ai.mean() - aj.mean())
    contested = float(np.minimum(ai, aj).sum())
    containment = 0.0
    if contested > 0:
        si, sj = float(alpha_i.sum()), float(alpha_j.sum())
        containment = (contested / si if si > 0 else 0.0) - (contested / sj if sj > 0 else 0.0)
    return 0.5 * (cover + containment)


def occlusion_order(alphas: Sequence[np.ndarray], boxes: Sequence[Box | None], tie: float = TIE) -> list[int]:
    """Front-to-back order of objects from pairwise :func:`occlusion_score`.

    The front-most remaining object is picked repeatedly: most pairwise wins minus losses against
    the remaining objects, then the largest summed score, then the earliest given. Objects that
    touch no other keep their given order relative to each other.

    Args:
        alphas: one ``H×W`` alpha per object, all computed on the same image.
        boxes: one extent per object (see :func:`object_box`).
        tie: scores below this magnitude count as no evidence.

    Returns:
        Object indices, front-most first.
    """
    n = len(alphas)
    if len(boxes) != n:
        raise ValueError(f"got {n} alphas but {len(boxes)} boxes")
    s = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            s[i, j] = occlusion_score(alphas[i], alphas[j], boxes[i], boxes[j])
            s[j, i] = -s[i, j]
    remaining = list(range(n))
    order: list[int] = []
    while remaining:
        def key(i: int) -> tuple[float, float, int]:
            row = s[i, remaining]
            wins = float((row > tie).sum() - (row < -tie).sum())
            return wins, float(row.sum()), -i
        best = max(remaining, key=key)
        order.append(best)
        remaining.remove(best)
    return order


def same_object(alpha_i: np.ndarray, alpha_j: np.ndarray, threshold: float = 0.8) -> float | None:
    """Soft IoU of two alphas when it reaches ``threshold`` (the same object), else None."""
    from layerkit.evaluation.metrics import soft_iou

    iou = soft_iou(alpha_i, alpha_j, empty=0.0)
    return iou if iou >= threshold else None
