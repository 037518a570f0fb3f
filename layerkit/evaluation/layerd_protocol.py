"""LayerD's multi-layer evaluation protocol, step for step (Suzuki et al., ICCV 2025).

Rewritten from the evaluation code LayerD released (``src/layerd/evaluation`` and
``tools/evaluate.py`` of CyberAgentAILab/LayerD, Apache-2.0) so that figures compare with the
published ones. It differs from layerkit's own protocol (:func:`layerkit.evaluation.multilayer.
evaluate_stacks` with ``protocol="layerkit"``) in four places:

1. **8-bit layers, PIL compositing.** Layers are straight RGBA ``uint8`` (as read from PNG);
   grouped and merged layers are made with ``PIL.Image.alpha_composite`` (integer arithmetic,
   rounded to 8 bits after every composite; not associative), and the scores read
   ``uint8 / 255`` in float64. The pair scores are LayerD's ``RGBL1`` (``Σ mean_c|ΔRGB| · [α_gt
   > 0] / (Σ [α_gt > 0] + 1e-8)``), ``AlphaIoU`` (soft IoU, 0 when both are empty) and
   ``RGBL1_AIoU`` (``(L1 + (1 − IoU)) / 2``).
2. **The gain rule.** A merge is chosen from the current DTW matches, not by re-aligning: for
   adjacent layers ``i, i+1`` of one stack, with ``A`` / ``B`` the layers of the other stack
   matched to ``i`` / ``i+1`` and ``s(x, G) = Σ_{g∈G} (1 − cost(x, g))``, the current score is
   ``s(ℓ_i, A) + s(ℓ_{i+1}, B)`` and the merged one ``s(m, A) + max(s(m, B), s(ℓ_{i+2}, A),
   s(ℓ_{i+2}, B))`` (``m`` = ``ℓ_{i+1}`` over ``ℓ_i``; the last two terms only when ``ℓ_{i+2}``
   exists). Positive gains are candidates; the largest gain of either stack is merged (ties: the
   lower index; between stacks: the GT's), even when the re-aligned cost then rises. A stack with
   2 layers or fewer is not merged. ``cost`` takes the merged stack's layer first, so on the GT
   side the RGB L1 is masked by the *prediction's* alpha — as in LayerD.
3. **Levels.** Merging stops at ``max_merges`` or when no positive gain is left; aggregation
   (:func:`aggregate_layerd`) reports levels 0 … the deepest level any sample reached, a sample
   that stopped earlier contributing its last level.
4. **Skipped stacks.** A prediction or ground truth with fewer than 2 layers is not scored
   (:func:`too_few_layers`); LayerD's script leaves such samples out of the means.

What is *not* hand-written: compositing is PIL's, the alignment is :func:`~layerkit.evaluation.
multilayer.dtw_path` (identical recursion and tie order to LayerD's ``dynamic_time_warping``)
and the grouping is :func:`~layerkit.evaluation.multilayer.disjoint_groups` (LayerD's
``group_top_layers_indices``). Merged layers and pair scores are cached per merge tree (8-bit
compositing is not associative, so a span alone does not identify a merged layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from layerkit.evaluation.multilayer import disjoint_groups, dtw_path
from layerkit.io.image import to_uint8

MIN_LAYERS = 2
Key = Any  # a leaf ("pred" | "gt", index) or a merge (bottom key, top key)


def as_uint8(layer: np.ndarray) -> np.ndarray:
    """An ``H×W×4`` straight-RGBA layer as ``uint8`` (floats in ``[0, 1]`` are rounded, as PNG saving does)."""
    a = np.asarray(layer)
    if a.ndim != 3 or a.shape[2] != 4:
        raise ValueError(f"a layer must be an H×W×4 RGBA array, got shape {a.shape}")
    return np.ascontiguousarray(a) if a.dtype == np.uint8 else to_uint8(a)


def composite_u8(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """``top`` over ``bottom`` with ``PIL.Image.alpha_composite`` (``uint8`` ``H×W×4`` in and out)."""
    return np.asarray(Image.alpha_composite(Image.fromarray(bottom, "RGBA"), Image.fromarray(top, "RGBA")))


def layerd_pair_scores(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    """LayerD's ``(RGBL1, AlphaIoU, RGBL1_AIoU)`` of two ``H×W×4`` layers (first = "pred").

    Args:
        pred: ``uint8``, or the float64 ``uint8 / 255`` of one (what LayerD computes from it).
        gt: likewise.
    """
    p = pred.astype(np.float64) / 255.0 if pred.dtype == np.uint8 else pred
    g = gt.astype(np.float64) / 255.0 if gt.dtype == np.uint8 else gt
    mask = g[..., 3] > 0
    l1 = float((np.abs(p[..., :3] - g[..., :3]).mean(-1) * mask).sum() / (mask.sum() + 1e-8))
    union = np.maximum(p[..., 3], g[..., 3]).sum()
    iou = float(np.minimum(p[..., 3], g[..., 3]).sum() / union) if union > 0 else 0.0
    return l1, iou, (l1 + (1.0 - iou)) / 2.0


def too_few_layers(n_pred: int, n_gt: int) -> str | None:
    """Why LayerD's script would skip a sample (fewer than 2 layers in a stack), or ``None``."""
    if n_pred < MIN_LAYERS or n_gt < MIN_LAYERS:
        which = "prediction" if n_pred < MIN_LAYERS else "ground truth"
        return f"fewer than {MIN_LAYERS} layers in the {which} (LayerD skips it)"
    return None


class _Cache:
    """8-bit layers by merge-tree key, and pair scores by ``(first key, second key)``."""

    def __init__(self, pred: list[np.ndarray], gt: list[np.ndarray]) -> None:
        self.img: dict[Key, np.ndarray] = {("pred", i): x for i, x in enumerate(pred)}
        self.img.update({("gt", i): x for i, x in enumerate(gt)})
        self._scores: dict[tuple[Key, Key], tuple[float, float, float]] = {}
        self._unit: dict[Key, np.ndarray] = {}

    def merge(self, bottom: Key, top: Key) -> Key:
        key = (bottom, top)
        if key not in self.img:
            self.img[key] = composite_u8(self.img[bottom], self.img[top])
        return key

    def unit(self, key: Key) -> np.ndarray:
        """The layer as float64 ``uint8 / 255``, computed once per layer."""
        if key not in self._unit:
            self._unit[key] = self.img[key].astype(np.float64) / 255.0
        return self._unit[key]

    def scores(self, first: Key, second: Key) -> tuple[float, float, float]:
        if (first, second) not in self._scores:
            self._scores[(first, second)] = layerd_pair_scores(self.unit(first), self.unit(second))
        return self._scores[(first, second)]

    def sim(self, x: Key, group: Sequence[Key]) -> float:
        """``Σ (1 − cost(x, g))`` over ``group`` (LayerD's similarity of a candidate to its matches)."""
        return sum(1 - self.scores(x, g)[2] for g in group)


def _best_gain(cache: _Cache, ls: list[Key], other: list[Key], pairs: list[tuple[int, int]]) -> tuple[int | None, float]:
    """The merge ``(i, i+1)`` of ``ls`` with LayerD's largest positive gain: ``(i, gain)``, or ``(None, -inf)``.

    ``pairs`` are the DTW matches ``(index in ls, index in other)``.
    """
    best: tuple[int | None, float] = (None, float("-inf"))
    if len(ls) <= MIN_LAYERS:
        return best
    for i in range(len(ls) - 1):
        merged = cache.merge(ls[i], ls[i + 1])
        near = [other[q] for p, q in pairs if p == i]
        far = [other[q] for p, q in pairs if p == i + 1]
        current = cache.sim(ls[i], near) + cache.sim(ls[i + 1], far)
        m_near = cache.sim(merged, near)
        options = [cache.sim(merged, far)]
        if i + 2 < len(ls):
            options += [cache.sim(ls[i + 2], near), cache.sim(ls[i + 2], far)]
        merged_score = m_near + max(options)  # = max(m_near + o): rounding is monotone
        if merged_score > current and merged_score - current > best[1]:
            best = (i, merged_score - current)
    return best


def _align(cache: _Cache, pred: list[Key], gt: list[Key]) -> dict[str, Any]:
    table = [[cache.scores(p, g) for g in gt] for p in pred]
    path = dtw_path(np.array([[s[2] for s in row] for row in table]))
    picked = [table[i][j] for i, j in path]
    return {"cost": float(np.mean([s[2] for s in picked])), "rgb_l1": float(np.mean([s[0] for s in picked])),
            "alpha_iou": float(np.mean([s[1] for s in picked])), "n_pred": len(pred), "n_gt": len(gt),
            "path": [list(x) for x in path]}


def evaluate_stacks_layerd(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], max_merges: int = 5,
                           group: bool = True) -> list[dict[str, Any]]:
    """Score a predicted against a GT stack with LayerD's protocol (``LayersEditDist``).

    Args:
        pred: predicted layers, ``H×W×4`` straight RGBA (``uint8``, or floats in ``[0, 1]``
            that are rounded to 8 bits first), bottom → top.
        gt: ground-truth layers, same size and layout.
        max_merges: LayerD's ``max_edits``.
        group: composite LayerD's groups of non-overlapping layers first (LayerD always does).

    Returns:
        One dict per level reached, as :func:`layerkit.evaluation.multilayer.evaluate_stacks`
        (``merges``, ``cost``, ``rgb_l1``, ``alpha_iou``, ``n_pred``, ``n_gt``, ``path``,
        ``merged``) plus ``gain``: LayerD's estimated gain of the merge that led to it.
    """
    if not len(pred) or not len(gt):
        raise ValueError("both stacks need at least one layer")
    p8, g8 = [as_uint8(x) for x in pred], [as_uint8(x) for x in gt]
    if p8[0].shape != g8[0].shape:
        raise ValueError(f"predicted layers are {p8[0].shape} but GT layers are {g8[0].shape}; stacks must share the canvas")
    cache = _Cache(p8, g8)
    stacks: dict[str, list[Key]] = {}
    for side, layers in (("pred", p8), ("gt", g8)):
        groups = disjoint_groups([x[..., 3] for x in layers]) if group else [[i] for i in range(len(layers))]
        keys = []
        for g in groups:  # a group is composited left to right, as functools.reduce(alpha_composite, ...)
            key: Key = (side, g[0])
            for i in g[1:]:
                key = cache.merge(key, (side, i))
            keys.append(key)
        stacks[side] = keys
    current = _align(cache, stacks["pred"], stacks["gt"])
    levels = [dict(current, merges=0, merged=None, gain=None)]
    for k in range(1, max_merges + 1):
        pairs = [(i, j) for i, j in current["path"]]
        i_p, gain_p = _best_gain(cache, stacks["pred"], stacks["gt"], pairs)
        i_g, gain_g = _best_gain(cache, stacks["gt"], stacks["pred"], [(j, i) for i, j in pairs])
        if i_p is None and i_g is None:
            break
        side, i, gain = ("pred", i_p, gain_p) if gain_p > gain_g else ("gt", i_g, gain_g)
        keys = stacks[side]
        stacks[side] = keys[:i] + [cache.merge(keys[i], keys[i + 1])] + keys[i + 2:]
        current = _align(cache, stacks["pred"], stacks["gt"])
        levels.append(dict(current, merges=k, merged=f"{side}:{i}+{i + 1}", gain=gain))
    return levels


def aggregate_layerd(per_sample: Sequence[Sequence[dict[str, Any]]],
                     keys: Sequence[str] = ("cost", "rgb_l1", "alpha_iou", "n_pred", "n_gt")) -> list[dict[str, Any]]:
    """LayerD's ``LayersEditDist.aggregate``: mean scores at levels 0 … the deepest level reached.

    A sample without level ``k`` contributes its last level.

    Returns:
        One row per level: ``merges``, ``samples`` (all scored samples), ``reached`` (samples
        that have this level; LayerD's ``count``), ``avg_merges`` (mean of ``min(merges made,
        k)``; LayerD's ``avg_edits``) and the mean of each of ``keys``.
    """
    runs = [r for r in per_sample if r]
    rows = []
    for k in range(max((len(r) for r in runs), default=0)):
        vals = [r[min(k, len(r) - 1)] for r in runs]
        row: dict[str, Any] = {"merges": k, "samples": len(runs), "reached": sum(len(r) > k for r in runs),
                               "avg_merges": float(np.mean([min(len(r) - 1, k) for r in runs]))}
        row.update({key: float(np.mean([v[key] for v in vals])) for key in keys})
        rows.append(row)
    return rows
