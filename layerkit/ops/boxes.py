"""Box helpers shared by grounding glue and evaluation."""

from __future__ import annotations

import numpy as np


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
