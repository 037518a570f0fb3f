"""Front-to-back order of objects from their mutual occlusion: pairwise cues and a best-agreeing ranking.

Input: one alpha per object, all computed on the same image (first-pass masks), and each
object's extent. For every overlapping pair ``(i, j)`` three cues each give a score in
``[-1, 1]`` (``> 0``: ``i`` is in front of ``j``):

* **contested pixels** (:func:`layerkit.modules.orderer.evidence.contested_owner`): where both masks
  claim the same pixels, a box segmenter has swallowed the occluder; the pixels' owner by colour
  is the front object;
* **continuation** (:func:`continuation_score`, after the completion stage's shape prior): the
  object behind is the one whose shape plausibly continues into the other; its convex hull
  reaches into the other's mask, while the front object's hull stays clear of the object behind
  it. The score is ``(I(j→i) − I(i→j)) / (I(j→i) + I(i→j))`` with ``I(a→b) = |hull(a) ∩ b \\ a|``;
* **cover**: mean alpha of ``i`` minus that of ``j`` inside the two extents' overlap (the front
  object is whole there).

The pair score is the weighted sum; the order is the permutation that agrees best with all
pair scores (``Σ_{i before j} s(i, j)``, exhaustive up to :data:`EXACT_MAX` objects, greedy
wins-minus-losses above), ties keeping the given order.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import cv2
import numpy as np

from layerkit.modules.orderer.evidence import contested_owner, pair_matrix
from layerkit.ops.boxes import Box, box_intersection
from layerkit.ops.colour import colour_index, region_histogram

#: most objects ranked exhaustively (n! permutations); more are ranked greedily
EXACT_MAX = 7


def _hull(mask: np.ndarray) -> np.ndarray:
    pts = cv2.findNonZero(mask.astype(np.uint8))
    out = np.zeros(mask.shape, np.uint8)
    if pts is not None:
        cv2.fillConvexPoly(out, cv2.convexHull(pts), 1)
    return out.astype(bool)


def continuation_score(mask_i: np.ndarray, mask_j: np.ndarray, min_pixels: int = 20) -> float:
    """``> 0`` when ``j`` continues behind ``i`` (``j``'s hull reaches into ``i`` more than the reverse).

    Args:
        mask_i: ``H×W`` bool mask of object ``i``.
        mask_j: ``H×W`` bool mask of object ``j``.
        min_pixels: fewer intruding pixels in total is no evidence (0).
    """
    into_i = float((_hull(mask_j) & mask_i & ~mask_j).sum())
    into_j = float((_hull(mask_i) & mask_j & ~mask_i).sum())
    total = into_i + into_j
    return 0.0 if total < min_pixels else (into_i - into_j) / total


def split_contested(image: np.ndarray | None, mask_i: np.ndarray, mask_j: np.ndarray,
                    bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Make two masks disjoint: each pixel both claim goes to the object whose uncontested
    pixels' colour histogram gives its colour the higher likelihood (to ``i`` on ties, or to
    neither when ``image`` is None)."""
    both = mask_i & mask_j
    if not both.any():
        return mask_i, mask_j
    ei, ej = mask_i & ~both, mask_j & ~both
    if image is None or ei.sum() < 10 or ej.sum() < 10:
        return ei, ej
    idx = colour_index(image, bins)
    hi, hj = region_histogram(idx, ei, bins, prior=1.0), region_histogram(idx, ej, bins, prior=1.0)
    to_i = hi[idx] >= hj[idx]
    return ei | (both & to_i), ej | (both & ~to_i)


def pair_score(alpha_i: np.ndarray, alpha_j: np.ndarray, box_i: Box | None, box_j: Box | None,
               image: np.ndarray | None = None, weights: tuple[float, float, float] = (1.0, 1.0, 0.0),
               min_contest: float = 0.02) -> float:
    """Weighted sum of the three cues of the module docstring; antisymmetric in ``(i, j)``.

    Args:
        alpha_i: ``H×W`` alpha of ``i`` in ``[0, 1]``.
        alpha_j: ``H×W`` alpha of ``j``.
        box_i: extent of ``i`` (xyxy, exclusive ends).
        box_j: extent of ``j``.
        image: ``H×W×3`` image the alphas come from (enables the contested-pixel cue).
        weights: ``(contested, continuation, cover)`` weights.
        min_contest: least contested share of the smaller object for the contested cue.
    """
    mi, mj = alpha_i > 0.5, alpha_j > 0.5
    o = box_intersection(box_i, box_j)
    near = cv2.dilate(mi.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & mj
    if o is None and not near.any():
        return 0.0
    score = 0.0
    if image is not None and weights[0]:
        owner, n = contested_owner(image, alpha_i, alpha_j)
        smaller = min(float(mi.sum()), float(mj.sum()))
        if smaller > 0 and n >= min_contest * smaller:
            score += weights[0] * owner
    si, sj = split_contested(image, mi, mj)
    if weights[1]:
        score += weights[1] * continuation_score(si, sj)
    if weights[2] and o is not None:
        x0, y0, x1, y1 = o
        score += weights[2] * float(alpha_i[y0:y1, x0:x1].mean() - alpha_j[y0:y1, x0:x1].mean())
    return score


def rank(scores: np.ndarray) -> list[int]:
    """The order (front first) maximising ``Σ_{i before j} scores[i, j]``; ties keep index order."""
    n = scores.shape[0]
    if n <= EXACT_MAX:
        best, best_val = list(range(n)), -np.inf
        for perm in itertools.permutations(range(n)):
            val = sum(scores[perm[a], perm[b]] for a in range(n) for b in range(a + 1, n))
            if val > best_val + 1e-9:
                best, best_val = list(perm), val
        return best
    remaining, order = list(range(n)), []
    while remaining:
        pick = max(remaining, key=lambda i: (float((scores[i, remaining] > 0).sum() - (scores[i, remaining] < 0).sum()),
                                             float(scores[i, remaining].sum()), -i))
        order.append(pick)
        remaining.remove(pick)
    return order


def occlusion_order(alphas: Sequence[np.ndarray], boxes: Sequence[Box | None], image: np.ndarray | None = None,
                    weights: tuple[float, float, float] = (1.0, 1.0, 0.0)) -> list[int]:
    """Front-to-back order of objects (indices, front-most first).

    Args:
        alphas: one ``H×W`` alpha per object, all computed on the same image.
        boxes: one extent per object (:func:`layerkit.modules.orderer.evidence.object_box`).
        image: the ``H×W×3`` image (enables the contested-pixel cue).
        weights: ``(contested, continuation, cover)`` cue weights.

    Raises:
        ValueError: ``alphas`` and ``boxes`` of different lengths.
    """
    n = len(alphas)
    if len(boxes) != n:
        raise ValueError(f"got {n} alphas but {len(boxes)} boxes")
    w = tuple(weights)
    return rank(pair_matrix(n, lambda i, j: pair_score(alphas[i], alphas[j], boxes[i], boxes[j], image, w)))  # type: ignore[arg-type]
