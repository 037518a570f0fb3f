"""Front-to-back order from a fitted combination of occlusion cues (weight-free; backend ``cues``).

Input, as for every orderer: one first-pass alpha per object, all computed on the same image,
and each object's prompt. For every pair ``(i, j)`` whose extents touch, :func:`pair_features`
measures the cues below, each a score in ``[-1, 1]`` (``> 0``: ``i`` is in front of ``j``);
the pair score is their weighted sum with :data:`WEIGHTS`, and the order is the permutation that
agrees best with all pair scores (:func:`layerkit.modules.orderer.occlusion.rank`).

* ``contested``: where both masks claim the same pixels, a box segmenter swallowed the other
  object; the pixels' owner by colour is in front
  (:func:`~layerkit.modules.orderer.evidence.contested_owner`).
* ``tight``: a prompt box is the tight box of its object's *visible* part. If ``j`` were in front
  of ``i``, the pixels both claim would be ``j``'s and ``i``'s visible mask ``m_i \\ m_j`` would
  have to reach every side of ``i``'s box; the hypothesis whose remainder falls short of its box
  (:func:`box_shrink`) is the wrong one (:func:`tightness`).
* ``hull``: the object behind continues behind the other; its convex hull reaches into the
  other's mask (:func:`~layerkit.modules.orderer.occlusion.continuation_score`), on masks made
  disjoint by colour (:func:`~layerkit.modules.orderer.occlusion.split_contested`).
* ``junction10`` / ``junction20``: at a T-junction (where both objects and the background
  meet) the front object's outline runs straight through, so it fills about half a small disc
  there while the object behind, cut at a corner, fills less (:func:`junction_area`).
* ``straight5`` / ``straight10`` / ``straight20``: the same T-junction read on the outlines:
  where an object's contour switches from bordering the other object to bordering the rest,
  the front object's contour is straight and the back object's turns a corner
  (:func:`junction_straightness`, arms of 5, 10 and 20 contour pixels).
* ``cover``: mean alpha of ``i`` minus that of ``j`` over the two extents' overlap.
* ``hull_h`` / ``junction20_h`` / ``straight10_h`` / ``straight20_h``: those geometric cues on
  the two partitions "the contested pixels are ``i``'s" and "they are ``j``'s", averaged
  (:func:`_hypotheses`), so a wrong colour split cannot decide them alone.
* ``contested_g`` / ``tight_g``: the two swallow cues damped when a mask fills under 30 % of its
  box (:func:`_fill`): such a mask is more often a failed segmentation (a thin object segmented as
  its neighbour) than a swallowed occluder.

Every feature is exactly antisymmetric (``f(i, j) = −f(j, i)``): those whose tie-breaks favour
the first argument are averaged over both argument orders. :data:`WEIGHTS` are logistic-regression
weights (no intercept, L2 ``C = 0.3``) fitted on 80 synthetic 3-object stacks made from 17 of the
33 dev foreground objects (TUNE); ``benchmarks/ordering_fit.py`` refits them and
``docs/multilayer.md`` gives the figures on stacks of the other 16 objects.
"""

from __future__ import annotations

import cv2
import numpy as np

from layerkit.errors import ConfigError
from layerkit.modules.base import Orderer
from layerkit.modules.orderer.evidence import contested_owner, object_box, pair_matrix
from layerkit.modules.orderer.occlusion import continuation_score, rank, split_contested
from layerkit.ops.boxes import Box, box_intersection, box_union
from layerkit.types import Prompt

FEATURES = ("contested", "tight", "hull", "junction10", "junction20", "straight5", "straight10", "straight20",
            "cover", "hull_h", "junction20_h", "straight10_h", "straight20_h",
            "contested_g", "tight_g")
#: logistic weights of :data:`FEATURES`, fitted by ``benchmarks/ordering_fit.py`` on the TUNE stacks
WEIGHTS = (0.049, 0.054, 0.576, -0.059, 0.032, -0.075, 0.428, 0.685, -0.717, 0.421, 0.386, 0.88, 1.263, 0.345, 0.879)
#: pixels around the two objects' boxes that the cues look at
MARGIN = 24


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)


def _disc(r: int) -> np.ndarray:
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return ((x * x + y * y) <= r * r).astype(np.float32)


def _junctions(mi: np.ndarray, mj: np.ndarray, band: int = 2) -> np.ndarray:
    """Pixels of the shared boundary of ``mi`` and ``mj`` that also touch neither (the T-junctions)."""
    shared = (mi & _dilate(mj, band)) | (mj & _dilate(mi, band))
    return shared & _dilate(~(mi | mj), band + 1)


def junction_area(mi: np.ndarray, mj: np.ndarray, r: int = 10) -> float:
    """``> 0`` when ``i`` fills more than ``j`` of the radius-``r`` discs centred on their T-junctions.

    Args:
        mi: ``H×W`` bool mask of ``i``; ``mj`` of ``j`` (disjoint from ``mi``).
        r: disc radius in pixels.

    Returns:
        ``(A_i − A_j) / (A_i + A_j)`` in ``[-1, 1]``; 0 without junctions.
    """
    j = _junctions(mi, mj)
    if j.sum() < 3:
        return 0.0
    k = _disc(r)
    ai = float(cv2.filter2D(mi.astype(np.float32), -1, k, borderType=cv2.BORDER_CONSTANT)[j].sum())
    aj = float(cv2.filter2D(mj.astype(np.float32), -1, k, borderType=cv2.BORDER_CONSTANT)[j].sum())
    return (ai - aj) / (ai + aj) if ai + aj > 0 else 0.0


def straightness(mask: np.ndarray, other: np.ndarray, arm: int = 10, band: int = 2) -> list[float]:
    """``−cos`` of the contour angle (1: straight, −1: folded back) of ``mask``'s outer contour at
    each point where it switches between bordering ``other`` and bordering the rest.

    The angle at contour point ``p_t`` is the one between ``p_{t−arm} − p_t`` and ``p_{t+arm} − p_t``.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    near = _dilate(other, band)
    out: list[float] = []
    for c in contours:
        p = c[:, 0].astype(np.float64)
        n = len(p)
        if n < 4 * arm:
            continue
        touches = near[p[:, 1].astype(int), p[:, 0].astype(int)]
        if touches.all() or not touches.any():
            continue
        for t in np.flatnonzero(touches != np.roll(touches, 1)):
            a, b = p[(t - arm) % n] - p[t], p[(t + arm) % n] - p[t]
            na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            if na >= 1 and nb >= 1:
                out.append(-float(a @ b) / (na * nb))
    return out


def junction_straightness(mi: np.ndarray, mj: np.ndarray, arm: int = 10) -> float:
    """``> 0`` when ``i``'s contour is straighter than ``j``'s where the two meet the rest (``[-1, 1]``)."""
    si, sj = straightness(mi, mj, arm), straightness(mj, mi, arm)
    return 0.0 if not si or not sj else float(np.clip((np.mean(si) - np.mean(sj)) / 2, -1, 1))


def box_shrink(mask: np.ndarray, box: Box) -> float:
    """How far ``mask``'s extent inside ``box`` falls short of the box's four sides, each as a share
    of the box's width or height (0: touches all four; 4: empty)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    ys, xs = np.nonzero(mask[y0:y1, x0:x1])
    if ys.size == 0:
        return 4.0
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    return float(xs.min() / w + (w - 1 - xs.max()) / w + ys.min() / h + (h - 1 - ys.max()) / h)


def tightness(mi: np.ndarray, mj: np.ndarray, box_i: Box | None, box_j: Box | None) -> float:
    """``> 0`` when giving the contested pixels to ``j`` (``j`` in front) shrinks ``i``'s visible
    extent inside its prompt box more than the reverse shrinks ``j``'s (``[-1, 1]``; 0 without
    contested pixels or a box)."""
    if box_i is None or box_j is None or not (mi & mj).any():
        return 0.0
    lost_i = box_shrink(mi & ~mj, box_i) - box_shrink(mi, box_i)   # i behind j: i keeps m_i \ m_j
    lost_j = box_shrink(mj & ~mi, box_j) - box_shrink(mj, box_j)
    return float(np.tanh(5.0 * (lost_i - lost_j)))


def _split_cues(image: np.ndarray | None, ai: np.ndarray, aj: np.ndarray) -> np.ndarray:
    """The cues whose tie-breaks favour the first argument (contested colour owner, and the
    geometric cues on the colour split): ``pair_features`` averages both argument orders."""
    mi, mj = ai > 0.5, aj > 0.5
    si, sj = split_contested(image, mi, mj)
    return np.array([
        contested_owner(image, ai, aj)[0] if image is not None else 0.0,
        continuation_score(si, sj),
        junction_area(si, sj, 10), junction_area(si, sj, 20),
        junction_straightness(si, sj, 5), junction_straightness(si, sj, 10), junction_straightness(si, sj, 20),
    ])


def _features(image: np.ndarray | None, ai: np.ndarray, aj: np.ndarray, pbox_i: Box | None, pbox_j: Box | None,
              overlap: Box | None) -> np.ndarray:
    """:data:`FEATURES` on a crop; the cues outside :func:`_split_cues` are exactly antisymmetric as they are."""
    mi, mj = ai > 0.5, aj > 0.5
    split = (_split_cues(image, ai, aj) - _split_cues(image, aj, ai)) / 2.0
    cover = 0.0
    if overlap is not None:
        x0, y0, x1, y1 = overlap
        cover = float(ai[y0:y1, x0:x1].mean() - aj[y0:y1, x0:x1].mean())
    tight = tightness(mi, mj, pbox_i, pbox_j)
    g = min(_fill(mi, pbox_i), _fill(mj, pbox_j))
    return np.array([split[0], tight, *split[1:], cover, *_hypotheses(mi, mj), split[0] * g, tight * g])


def _fill(mask: np.ndarray, box: Box | None, full: float = 0.3) -> float:
    """How much of its box the mask fills, relative to ``full`` (capped at 1; 1 without a box)."""
    if box is None:
        return 1.0
    x0, y0, x1, y1 = (int(v) for v in box)
    area = max(1, (x1 - x0) * (y1 - y0))
    return min(1.0, float(mask[max(0, y0):y1, max(0, x0):x1].sum()) / area / full)


def _hypotheses(mi: np.ndarray, mj: np.ndarray) -> list[float]:
    """The geometric cues averaged over the two partitions "contested pixels are i's" (i in front)
    and "they are j's" (j in front)."""
    parts = [(mi, mj & ~mi), (mi & ~mj, mj)] if (mi & mj).any() else [(mi, mj)]
    rows = [[continuation_score(a, b), junction_area(a, b, 20), junction_straightness(a, b, 10),
             junction_straightness(a, b, 20)] for a, b in parts]
    return [float(v) for v in np.mean(rows, axis=0)]


def _shift(box: Box | None, x: int, y: int) -> Box | None:
    return None if box is None else (box[0] - x, box[1] - y, box[2] - x, box[3] - y)


def pair_features(image: np.ndarray | None, alpha_i: np.ndarray, alpha_j: np.ndarray, box_i: Box | None,
                  box_j: Box | None, prompt_box_i: Box | None = None, prompt_box_j: Box | None = None) -> np.ndarray:
    """The :data:`FEATURES` of the pair, each in ``[-1, 1]`` and exactly antisymmetric in ``(i, j)``.

    Args:
        image: ``H×W×3`` image the alphas come from (None: the colour cues are 0).
        alpha_i: ``H×W`` alpha of ``i`` in ``[0, 1]``; ``alpha_j`` of ``j``.
        box_i: extent of ``i`` (:func:`~layerkit.modules.orderer.evidence.object_box`); ``box_j`` of ``j``.
        prompt_box_i: the box ``i`` was prompted with (the tight box of its visible part), or
            None; ``prompt_box_j`` of ``j``.

    Returns:
        ``len(FEATURES)`` floats; all 0 when the two extents (grown by :data:`MARGIN`) do not meet.
    """
    zero = np.zeros(len(FEATURES))
    if box_i is None or box_j is None:
        return zero
    h, w = alpha_i.shape
    grown = [(max(0, b[0] - MARGIN), max(0, b[1] - MARGIN), min(w, b[2] + MARGIN), min(h, b[3] + MARGIN))
             for b in (box_i, box_j)]
    if box_intersection(*grown) is None:
        return zero
    x0, y0, x1, y1 = box_union(*grown)  # type: ignore[misc]
    crop = (slice(y0, y1), slice(x0, x1))
    img = None if image is None else image[crop]
    ai, aj = alpha_i[crop], alpha_j[crop]
    pi, pj, ov = _shift(prompt_box_i, x0, y0), _shift(prompt_box_j, x0, y0), _shift(box_intersection(box_i, box_j), x0, y0)
    return _features(img, ai, aj, pi, pj, ov)


def _prompt_box(prompt: Prompt | None) -> Box | None:
    if prompt is None or prompt.boxes is None or len(prompt.boxes) != 1:
        return None
    return tuple(int(v) for v in prompt.boxes[0])  # type: ignore[return-value]


def score_matrix(image: np.ndarray | None, alphas: list[np.ndarray], prompts: list[Prompt | None],
                 weights: tuple[float, ...] = WEIGHTS) -> np.ndarray:
    """``n×n`` antisymmetric pair scores (``[i, j] > 0``: ``i`` in front of ``j``).

    Raises:
        ValueError: ``alphas`` and ``prompts`` of different lengths, or ``weights`` not one per feature.
    """
    n = len(alphas)
    if len(prompts) != n:
        raise ValueError(f"got {n} alphas but {len(prompts)} prompts")
    if len(weights) != len(FEATURES):
        raise ValueError(f"weights must give one value per feature {FEATURES}, got {len(weights)}")
    boxes = [object_box(a, p) for a, p in zip(alphas, prompts)]
    pboxes = [_prompt_box(p) for p in prompts]
    w = np.asarray(weights, np.float64)
    return pair_matrix(n, lambda i, j: float(pair_features(image, alphas[i], alphas[j], boxes[i], boxes[j],
                                                           pboxes[i], pboxes[j]) @ w))


class CueOrderer(Orderer):
    """Objects → front-to-back order from the weighted occlusion cues of the module docstring.

    Args:
        weights: one weight per name in :data:`FEATURES` (default: the fitted :data:`WEIGHTS`).

    Raises:
        ConfigError: not one weight per feature.
    """

    def __init__(self, weights: tuple[float, ...] = WEIGHTS) -> None:
        self.weights = tuple(float(x) for x in weights)
        if len(self.weights) != len(FEATURES):
            raise ConfigError(f"orderer.weights needs {len(FEATURES)} values, one per cue {list(FEATURES)}, got "
                              f"{len(self.weights)}; leave it unset for the fitted defaults")

    def __call__(self, image: np.ndarray, alphas: list[np.ndarray], prompts: list[Prompt | None]) -> list[int]:
        return rank(score_matrix(image, alphas, prompts, self.weights))
