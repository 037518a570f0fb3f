"""Multi-layer metrics: layerkit's own protocol (``eval-layers --protocol layerkit``) and the parts it shares with LayerD's.

The default of ``layerkit eval-layers`` is LayerD's exact protocol
(:mod:`layerkit.evaluation.layerd_protocol`, Suzuki et al., ICCV 2025), which reuses the pair
scores' definitions, :func:`dtw_path` and :func:`disjoint_groups` from here. Two stacks (bottom →
top lists of ``H×W×4`` straight-RGBA float layers) are compared so that neither the number of
layers nor a split of one object into two is fatal:

1. **grouping** — in each stack, layers whose ``α > 0`` regions do not overlap any layer above
   them in the same round are composited into one group, round after round from the top
   (LayerD's "top layers" grouping), so order-free parts of a design count as one layer;
2. **per-pair scores** — RGB L1 (per-pixel mean ``|ΔRGB|`` over the GT layer's ``α > 0``) and
   alpha soft IoU (``Σ min / Σ max``, 0 when both are empty); the alignment cost of a pair is
   ``(L1 + 1 − IoU) / 2`` in ``[0, 1]``;
3. **order-preserving alignment** — dynamic time warping over the cost matrix (monotone path
   from the bottom pair to the top pair; a layer may match several layers of the other stack);
   the scores are means over the path's pairs;
4. **greedy merges** — up to ``max_merges`` times, two adjacent layers of either stack are
   merged ("over") when that lowers the mean aligned cost; the scores are reported at each
   merge level 0…``max_merges`` (a sample that stops early keeps its last scores).

Where this differs from LayerD's protocol: every candidate merge is re-aligned with DTW and the
exact new mean cost is compared (LayerD estimates a merge's gain from the current matches and
merges on a positive estimate even if the cost then rises), compositing is in float (LayerD:
PIL's 8-bit ``alpha_composite``), every level 0…``max_merges`` is reported (LayerD: up to the
deepest level reached) and stacks of one layer are scored (LayerD skips them). Merge level 0
agrees with LayerD's to about 1e-9 where no layers are grouped (float32 versus 8-bit inputs) and
to below 1e-3 where they are (a group is composited in float here, in 8 bits by LayerD); deeper
levels differ by up to ~0.19 cost per sample (docs/multilayer.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from layerkit.evaluation.metrics import masked_l1, soft_iou
from layerkit.ops.compositing import over


def pair_scores(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    """``(rgb_l1, alpha_iou, cost)`` of one predicted and one GT ``H×W×4`` straight-RGBA layer."""
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 4:
        raise ValueError(f"layers must be two H×W×4 arrays of one size, got {pred.shape} and {gt.shape}")
    l1 = masked_l1(pred[..., :3], gt[..., :3], gt[..., 3] > 0)
    iou = soft_iou(pred[..., 3], gt[..., 3], empty=0.0)
    return l1, iou, (l1 + 1.0 - iou) / 2.0


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """Order-preserving alignment of two sequences by dynamic time warping.

    Args:
        cost: ``n×m`` pair costs (``n, m ≥ 1``).

    Returns:
        The monotone path ``[(0, 0), …, (n−1, m−1)]`` of minimum summed cost; steps are
        ``(+1, +1)``, ``(+1, 0)`` or ``(0, +1)``. Ties prefer the diagonal, then ``(−1, 0)``.
    """
    c = np.asarray(cost, np.float64)
    if c.ndim != 2 or 0 in c.shape:
        raise ValueError(f"cost must be a non-empty n×m matrix, got shape {c.shape}")
    n, m = c.shape
    acc = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                acc[i, j] = c[0, 0]
                continue
            best = min(acc[i - 1, j - 1] if i and j else np.inf, acc[i - 1, j] if i else np.inf, acc[i, j - 1] if j else np.inf)
            acc[i, j] = c[i, j] + best
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i or j:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            if diag <= up and diag <= left:
                i, j = i - 1, j - 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
        path.append((i, j))
    return path[::-1]


def disjoint_groups(alphas: Sequence[np.ndarray]) -> list[list[int]]:
    """LayerD's grouping of a bottom → top stack into groups of non-overlapping layers.

    Repeatedly, every remaining layer whose ``α > 0`` region overlaps no remaining layer above
    it forms the current top group; the groups are returned bottom → top, each bottom → top.

    Args:
        alphas: ``H×W`` alphas, bottom → top.
    """
    masks = [np.asarray(a) > 0 for a in alphas]
    remaining = list(range(len(masks)))
    groups: list[list[int]] = []
    while remaining:
        top = [i for k, i in enumerate(remaining) if not any((masks[i] & masks[j]).any() for j in remaining[k + 1:])]
        groups.append(top)
        remaining = [i for i in remaining if i not in top]
    return groups[::-1]


def merge(layers: Sequence[np.ndarray]) -> np.ndarray:
    """Composite ``H×W×4`` straight-RGBA layers bottom → top into one layer ("over")."""
    out = np.asarray(layers[0], np.float32)
    for layer in layers[1:]:
        out = over(np.asarray(layer, np.float32), out)
    return out


def group_stack(layers: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The stack with each :func:`disjoint_groups` group merged into one layer."""
    return [merge([layers[i] for i in g]) for g in disjoint_groups([layer[..., 3] for layer in layers])]


Span = tuple[int, int]


class _Scorer:
    """Scores of spans of two stacks; a span ``(lo, hi)`` is layers ``lo…hi−1`` merged into one.

    Greedy merges of adjacent layers only ever make contiguous spans, so merged layers and pair
    scores are cached per span (at most ``n²`` of each).
    """

    def __init__(self, pred: list[np.ndarray], gt: list[np.ndarray]) -> None:
        self.stacks = {"pred": pred, "gt": gt}
        self._layers: dict[tuple[str, Span], np.ndarray] = {}
        self._pairs: dict[tuple[Span, Span], tuple[float, float, float]] = {}

    def layer(self, side: str, span: Span) -> np.ndarray:
        if (side, span) not in self._layers:
            self._layers[(side, span)] = merge(self.stacks[side][span[0]:span[1]])
        return self._layers[(side, span)]

    def pair(self, p: Span, g: Span) -> tuple[float, float, float]:
        if (p, g) not in self._pairs:
            self._pairs[(p, g)] = pair_scores(self.layer("pred", p), self.layer("gt", g))
        return self._pairs[(p, g)]

    def align(self, pred: Sequence[Span], gt: Sequence[Span]) -> dict[str, Any]:
        table = [[self.pair(p, g) for g in gt] for p in pred]
        path = dtw_path(np.array([[s[2] for s in row] for row in table]))
        picked = [table[i][j] for i, j in path]
        return {"cost": float(np.mean([s[2] for s in picked])), "rgb_l1": float(np.mean([s[0] for s in picked])),
                "alpha_iou": float(np.mean([s[1] for s in picked])), "n_pred": len(pred), "n_gt": len(gt),
                "path": [list(x) for x in path]}


def _merged(spans: list[Span], i: int) -> list[Span]:
    return spans[:i] + [(spans[i][0], spans[i + 1][1])] + spans[i + 2:]


def evaluate_stacks(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], max_merges: int = 5, group: bool = True,
                    min_layers: int = 2) -> list[dict[str, Any]]:
    """Compare a predicted and a GT stack at merge levels 0…``max_merges``.

    Args:
        pred: predicted layers, ``H×W×4`` straight RGBA in ``[0, 1]``, bottom → top.
        gt: ground-truth layers, same size, bottom → top.
        max_merges: largest number of greedy merges.
        group: apply LayerD's grouping of non-overlapping layers first.
        min_layers: a stack with this many layers or fewer is not merged further.

    Returns:
        One dict per level actually reached (``merges``, ``cost``, ``rgb_l1``, ``alpha_iou``,
        ``n_pred``, ``n_gt``, ``path`` and ``merged``: the stack and the pair of its current
        layers that the last merge joined, e.g. ``"pred:1+2"``); stops early when no merge
        lowers the cost.
    """
    if not len(pred) or not len(gt):
        raise ValueError("both stacks need at least one layer")
    if pred[0].shape != gt[0].shape:
        raise ValueError(f"predicted layers are {pred[0].shape} but GT layers are {gt[0].shape}; stacks must share the canvas")
    p_layers = group_stack(pred) if group else [np.asarray(x, np.float32) for x in pred]
    g_layers = group_stack(gt) if group else [np.asarray(x, np.float32) for x in gt]
    scorer = _Scorer(p_layers, g_layers)
    spans = {"pred": [(i, i + 1) for i in range(len(p_layers))], "gt": [(i, i + 1) for i in range(len(g_layers))]}
    current = scorer.align(spans["pred"], spans["gt"])
    levels = [dict(current, merges=0, merged=None)]
    for k in range(1, max_merges + 1):
        best: tuple[dict[str, Any], str, list[Span], str] | None = None
        for side in ("pred", "gt"):
            if len(spans[side]) <= min_layers:
                continue
            for i in range(len(spans[side]) - 1):
                cand_spans = _merged(spans[side], i)
                cand = scorer.align(cand_spans, spans["gt"]) if side == "pred" else scorer.align(spans["pred"], cand_spans)
                if best is None or cand["cost"] < best[0]["cost"]:
                    best = (cand, side, cand_spans, f"{side}:{i}+{i + 1}")
        if best is None or best[0]["cost"] >= current["cost"] - 1e-12:
            break
        current, side, spans[side], what = best[0], best[1], best[2], best[3]
        levels.append(dict(current, merges=k, merged=what))
    return levels


LEVEL_KEYS = ("cost", "rgb_l1", "alpha_iou", "n_pred", "n_gt")


def at_level(levels: Sequence[dict[str, Any]], k: int) -> dict[str, Any]:
    """The scores at merge level ``k`` (the last reached level if the sample stopped earlier)."""
    return levels[min(k, len(levels) - 1)]


def aggregate_levels(per_sample: Sequence[Sequence[dict[str, Any]]], max_merges: int = 5) -> list[dict[str, Any]]:
    """Mean scores over samples at each merge level 0…``max_merges`` (every level, as layerkit reports it).

    A sample that stopped merging before level ``k`` contributes its last level's scores.

    Returns:
        One row per level: ``merges``, ``samples`` and the mean of :data:`LEVEL_KEYS`.
    """
    rows = []
    for k in range(max_merges + 1):
        vals = [at_level(levels, k) for levels in per_sample if levels]
        row: dict[str, Any] = {"merges": k, "samples": len(vals)}
        for key in LEVEL_KEYS:
            row[key] = float(np.mean([v[key] for v in vals])) if vals else float("nan")
        rows.append(row)
    return rows
