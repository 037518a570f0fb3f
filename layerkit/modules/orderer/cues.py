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
  there while the object behind, cut at a corner, fills less (:func:`~layerkit.modules.orderer.junctions.junction_area`).
* ``straight5`` / ``straight10`` / ``straight20``: the same T-junction read on the outlines:
  where an object's contour switches from bordering the other object to bordering the rest,
  the front object's contour is straight and the back object's turns a corner
  (:func:`~layerkit.modules.orderer.junctions.junction_straightness`, arms of 5, 10 and 20 contour pixels).
* ``tjunction14`` / ``tjunction24``: the T-junction read on the *image* (:func:`~layerkit.modules.orderer.junctions.junction_orientation`):
  at each junction found on the masks, the orientation of the image edge between the two objects
  (a colour structure tensor on a band along their shared boundary, 3 to 14 / 24 pixels from the
  junction) is compared with that of each object's own outline against the rest: the front
  object's outline runs on as the shared edge, the one behind meets it at an angle. The image
  edges stay where the object outlines are when the first-pass masks are a few pixels off.
* ``outline``: completion-informed (:func:`outline_continuation`): each object's amodal shape
  under the hypothesis that the other covers it (the completion stage's
  :func:`~layerkit.modules.completion.shape.amodal_shape`: its hull and its outline continued
  through the shared boundary by tangent-keeping curves, cut to the other's mask); the object
  whose shape continues further into the other is the one behind.
* ``cover``: mean alpha of ``i`` minus that of ``j`` over the two extents' overlap.
* ``hull_h`` / ``junction20_h`` / ``straight10_h`` / ``straight20_h``: those geometric cues on
  the two partitions "the contested pixels are ``i``'s" and "they are ``j``'s", averaged
  (:func:`_hypotheses`), so a wrong colour split cannot decide them alone.
* ``contested_g`` / ``tight_g``: the two swallow cues damped when a mask fills under 30 % of its
  box (:func:`_fill`): such a mask is more often a failed segmentation (a thin object segmented as
  its neighbour) than a swallowed occluder.

Every feature is exactly antisymmetric (``f(i, j) = −f(j, i)``): those whose tie-breaks favour
the first argument are averaged over both argument orders. :data:`WEIGHTS` (the default) are
logistic-regression weights of the first :data:`BASE_FEATURES` features (no intercept, L2
``C = 0.3``; every weight but ``cover``'s held ``>= 0``) fitted on licence-clean stacks only: 120 synthetic 3-object stacks
(``make-dataset --objects 3``, seeds 1, 3, 5) of 48 procedural objects
(:mod:`layerkit.training.procedural`, ``benchmarks/procedural_data.py --seed 0``) and the five
Apache / public-domain dev objects over 12 procedural and three CC-BY-4.0 backgrounds — no
number here derives from the dev set's GPL objects. :data:`IMAGE_WEIGHTS` weigh all features, the
image T-junction and completion-informed cues included (``orderer.image_cues=true``), fitted on
the same stacks. ``benchmarks/ordering_fit.py`` refits either and ``docs/multilayer.md`` gives the
figures on stacks of dev objects (evaluation only).
"""

from __future__ import annotations

import numpy as np

from layerkit.errors import ConfigError
from layerkit.modules.base import Orderer
from layerkit.modules.completion.shape import amodal_shape
from layerkit.modules.orderer.evidence import contested_owner, object_box, pair_matrix
from layerkit.modules.orderer.junctions import edge_gradients, junction_area, junction_orientation, junction_straightness
from layerkit.modules.orderer.occlusion import continuation_score, rank, split_contested
from layerkit.ops.boxes import Box, box_intersection, box_union
from layerkit.types import Prompt

FEATURES = ("contested", "tight", "hull", "junction10", "junction20", "straight5", "straight10", "straight20",
            "cover", "hull_h", "junction20_h", "straight10_h", "straight20_h",
            "contested_g", "tight_g", "tjunction14", "tjunction24", "outline")
#: the features of the previous orderer (a weight vector this long leaves the others at 0)
BASE_FEATURES = 15
#: logistic weights of the first :data:`BASE_FEATURES` of :data:`FEATURES`, fitted by
#: ``benchmarks/ordering_fit.py --base-only`` on the licence-clean stacks of the module docstring
#: (the default: the added cues are not measured)
WEIGHTS = (0.182, 0.0, 0.768, 0.19, 0.075, 0.851, 1.746, 1.828, -0.447, 0.494, 0.35, 1.47, 1.265, 0.182, 0.0)
#: weights of all :data:`FEATURES` (``orderer.image_cues=true``), fitted on the same licence-clean
#: stacks (C = 3); not the default: on the UNSEEN dev stacks they order fewer pairs right than
#: :data:`WEIGHTS` (77.9 % vs 78.8 %, ``docs/multilayer.md``), at about twice the cost
IMAGE_WEIGHTS = (0.144, 0.0, 0.059, 0.0, 0.0, 0.699, 2.868, 1.305, -0.986, 1.177, 0.357, 2.499, 0.126, 0.101, 0.0,
                 1.818, 1.244, 1.142)
#: pixels around the two objects' boxes that the cues look at
MARGIN = 24


def outline_continuation(mi: np.ndarray, mj: np.ndarray, bulge: float = 1.5) -> float:
    """``> 0`` when ``j``'s amodal shape, completed as if ``i`` covered it, reaches further into ``i``
    than ``i``'s into ``j`` (``j`` continues behind ``i``: ``i`` in front); ``[-1, 1]``.

    The shape is :func:`~layerkit.modules.completion.shape.amodal_shape` (``"extend"`` with reach 0:
    the convex hull and the outline continued through the other's mask by tangent-keeping curves
    of this ``bulge``, cut to the other's mask).
    """
    into_i = float(amodal_shape(mj, mi, "extend", depth=0.0, outline=bulge).sum()) if mj.any() else 0.0
    into_j = float(amodal_shape(mi, mj, "extend", depth=0.0, outline=bulge).sum()) if mi.any() else 0.0
    return 0.0 if into_i + into_j <= 0 else (into_i - into_j) / (into_i + into_j)


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


def _split_cues(image: np.ndarray | None, ai: np.ndarray, aj: np.ndarray,
                grads: tuple[np.ndarray, np.ndarray] | None, extra: bool = True) -> np.ndarray:
    """The cues whose tie-breaks favour the first argument (contested colour owner, and the
    geometric cues on the colour split): ``pair_features`` averages both argument orders.
    Returns the 7 split cues of the previous orderer, then, with ``extra``, ``tjunction14``,
    ``tjunction24`` and ``outline`` (else zeros)."""
    mi, mj = ai > 0.5, aj > 0.5
    si, sj = split_contested(image, mi, mj)
    new = [0.0, 0.0, 0.0]
    if extra:
        new = [junction_orientation(grads, si, sj, 14) if grads is not None else 0.0,
               junction_orientation(grads, si, sj, 24) if grads is not None else 0.0,
               outline_continuation(si, sj)]
    return np.array([
        contested_owner(image, ai, aj)[0] if image is not None else 0.0,
        continuation_score(si, sj),
        junction_area(si, sj, 10), junction_area(si, sj, 20),
        junction_straightness(si, sj, 5), junction_straightness(si, sj, 10), junction_straightness(si, sj, 20),
        *new,
    ])


def _features(image: np.ndarray | None, ai: np.ndarray, aj: np.ndarray, pbox_i: Box | None, pbox_j: Box | None,
              overlap: Box | None, extra: bool = True) -> np.ndarray:
    """:data:`FEATURES` on a crop; the cues outside :func:`_split_cues` are exactly antisymmetric as they are."""
    mi, mj = ai > 0.5, aj > 0.5
    grads = edge_gradients(image) if extra and image is not None else None
    split = (_split_cues(image, ai, aj, grads, extra) - _split_cues(image, aj, ai, grads, extra)) / 2.0
    cover = 0.0
    if overlap is not None:
        x0, y0, x1, y1 = overlap
        cover = float(ai[y0:y1, x0:x1].mean() - aj[y0:y1, x0:x1].mean())
    tight = tightness(mi, mj, pbox_i, pbox_j)
    g = min(_fill(mi, pbox_i), _fill(mj, pbox_j))
    return np.array([split[0], tight, *split[1:7], cover, *_hypotheses(mi, mj), split[0] * g, tight * g, *split[7:]])


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
                  box_j: Box | None, prompt_box_i: Box | None = None, prompt_box_j: Box | None = None,
                  extra: bool = True) -> np.ndarray:
    """The :data:`FEATURES` of the pair, each in ``[-1, 1]`` and exactly antisymmetric in ``(i, j)``.

    Args:
        image: ``H×W×3`` image the alphas come from (None: the colour cues are 0).
        alpha_i: ``H×W`` alpha of ``i`` in ``[0, 1]``; ``alpha_j`` of ``j``.
        box_i: extent of ``i`` (:func:`~layerkit.modules.orderer.evidence.object_box`); ``box_j`` of ``j``.
        prompt_box_i: the box ``i`` was prompted with (the tight box of its visible part), or
            None; ``prompt_box_j`` of ``j``.
        extra: also measure the features after the first :data:`BASE_FEATURES` (else they are 0:
            the cost of the previous orderer).

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
    return _features(img, ai, aj, pi, pj, ov, extra)


def _prompt_box(prompt: Prompt | None) -> Box | None:
    if prompt is None or prompt.boxes is None or len(prompt.boxes) != 1:
        return None
    return tuple(int(v) for v in prompt.boxes[0])  # type: ignore[return-value]


def score_matrix(image: np.ndarray | None, alphas: list[np.ndarray], prompts: list[Prompt | None],
                 weights: tuple[float, ...] = WEIGHTS) -> np.ndarray:
    """``n×n`` antisymmetric pair scores (``[i, j] > 0``: ``i`` in front of ``j``).

    Args:
        weights: one per :data:`FEATURES`, or the first :data:`BASE_FEATURES` only (the others 0).

    Raises:
        ValueError: ``alphas`` and ``prompts`` of different lengths, or ``weights`` of another length
            or not finite.
    """
    n = len(alphas)
    if len(prompts) != n:
        raise ValueError(f"got {n} alphas but {len(prompts)} prompts")
    w = _full_weights(weights)
    extra = bool(np.any(w[BASE_FEATURES:]))
    boxes = [object_box(a, p) for a, p in zip(alphas, prompts)]
    pboxes = [_prompt_box(p) for p in prompts]
    return pair_matrix(n, lambda i, j: float(pair_features(image, alphas[i], alphas[j], boxes[i], boxes[j],
                                                           pboxes[i], pboxes[j], extra) @ w))


def _full_weights(weights: tuple[float, ...]) -> np.ndarray:
    """``weights`` as one value per :data:`FEATURES` (a :data:`BASE_FEATURES`-long vector padded with 0)."""
    if len(weights) not in (BASE_FEATURES, len(FEATURES)):
        raise ValueError(f"weights must give one value per feature {FEATURES} (or the first {BASE_FEATURES}), "
                         f"got {len(weights)}")
    w = np.zeros(len(FEATURES))
    w[:len(weights)] = weights
    if not np.isfinite(w).all():
        raise ValueError(f"weights must be finite, got {list(weights)}")
    return w


class CueOrderer(Orderer):
    """Objects → front-to-back order from the weighted occlusion cues of the module docstring.

    Args:
        weights: one weight per name in :data:`FEATURES`, or the first :data:`BASE_FEATURES` (the
            added cues get 0 and are not measured); default: the fitted :data:`WEIGHTS`.
        image_cues: use :data:`IMAGE_WEIGHTS` (all cues, the image T-junctions and the
            completion-informed one included) instead of the default weights.

    Raises:
        ConfigError: not one weight per feature, a weight not finite, or ``image_cues`` with ``weights``
            other than the default (weights equal to :data:`WEIGHTS` cannot be told from the default).
    """

    def __init__(self, weights: tuple[float, ...] = WEIGHTS, image_cues: bool = False) -> None:
        if image_cues:
            if tuple(weights) != WEIGHTS:
                raise ConfigError("give orderer.weights or orderer.image_cues, not both")
            weights = IMAGE_WEIGHTS
        self.weights = tuple(float(x) for x in weights)
        if len(self.weights) not in (BASE_FEATURES, len(FEATURES)):
            raise ConfigError(f"orderer.weights needs {len(FEATURES)} values, one per cue {list(FEATURES)} (or the "
                              f"first {BASE_FEATURES}: the others 0), got {len(self.weights)}; leave it unset for the "
                              f"fitted defaults")
        if not np.isfinite(self.weights).all():
            raise ConfigError(f"orderer.weights must be finite numbers, got {list(self.weights)}")

    def __call__(self, image: np.ndarray, alphas: list[np.ndarray], prompts: list[Prompt | None]) -> list[int]:
        return rank(score_matrix(image, alphas, prompts, self.weights))
