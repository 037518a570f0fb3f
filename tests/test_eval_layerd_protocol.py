"""``eval-layers --protocol layerd`` against a reference written from LayerD's published evaluation.

The reference below (``_ref_*``) is a plain, uncached re-derivation of LayerD's
``LayersEditDist`` (``src/layerd/evaluation`` of CyberAgentAILab/LayerD): PIL images, lists
edited in place, the gain of a merge estimated from the current DTW matches. It shares no code
with :mod:`layerkit.evaluation.layerd_protocol`.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import pytest
from PIL import Image

from layerkit.errors import ConfigError
from layerkit.evaluation import layer_eval as LE
from layerkit.evaluation import layerd_protocol as LP
from layerkit.evaluation import multilayer as ML

# ----------------------------------------------------------------------------- reference


def _ref_scores(a: Image.Image, b: Image.Image) -> tuple[float, float, float]:
    """LayerD's RGBL1, AlphaIoU and RGBL1_AIoU; ``b`` plays the ground truth (its alpha masks the L1)."""
    x, y = np.array(a).astype(float) / 255, np.array(b).astype(float) / 255
    inside = y[..., 3] > 0
    l1 = (np.abs(x[..., :3] - y[..., :3]).mean(-1) * inside).sum() / (inside.sum() + 1e-8)
    union = np.maximum(x[..., 3], y[..., 3]).sum()
    iou = np.minimum(x[..., 3], y[..., 3]).sum() / union if union > 0 else 0.0
    return float(l1), float(iou), float((l1 + (1 - iou)) / 2)


def _ref_dtw(cost: np.ndarray) -> list[tuple[int, int]]:
    n, m = cost.shape
    acc = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            prev = [acc[i - 1, j - 1]] if i and j else []
            prev += [acc[i - 1, j]] if i else []
            prev += [acc[i, j - 1]] if j else []
            acc[i, j] = cost[i, j] + (min(prev) if prev else 0.0)
    i, j, path = n - 1, m - 1, [(n - 1, m - 1)]
    while i > 0 or j > 0:  # ties: diagonal, then down the prediction, then down the GT
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        elif acc[i - 1, j - 1] <= min(acc[i - 1, j], acc[i, j - 1]):
            i, j = i - 1, j - 1
        elif acc[i - 1, j] <= acc[i, j - 1]:
            i -= 1
        else:
            j -= 1
        path.insert(0, (i, j))
    return path


def _ref_align(pred: list[Image.Image], gt: list[Image.Image]) -> tuple[list[tuple[int, int]], dict[str, float]]:
    path = _ref_dtw(np.array([[_ref_scores(p, g)[2] for g in gt] for p in pred]))
    s = [_ref_scores(pred[i], gt[j]) for i, j in path]
    return path, {"rgb_l1": float(np.mean([x[0] for x in s])), "alpha_iou": float(np.mean([x[1] for x in s])),
                  "cost": float(np.mean([x[2] for x in s]))}


def _ref_group(layers: list[Image.Image]) -> list[Image.Image]:
    hard = [np.array(x.getchannel("A")) > 0 for x in layers]
    left, groups = list(range(len(layers))), []
    while left:
        top = [i for n, i in enumerate(left) if all(not (hard[i] & hard[j]).any() for j in left[n + 1:])]
        groups.insert(0, top)
        left = [i for i in left if i not in top]
    return [reduce(Image.alpha_composite, [layers[i] for i in g]) for g in groups]


def _ref_side(ls: list[Image.Image], other: list[Image.Image], pairs: list[tuple[int, int]]) -> tuple[int, float] | None:
    """Best LayerD merge of ``ls``: ``(i, gain)``, or ``None`` (2 layers or fewer, or no positive gain)."""
    if len(ls) <= 2:
        return None
    found: list[tuple[int, float]] = []
    for i in range(len(ls) - 1):
        m = Image.alpha_composite(ls[i], ls[i + 1])
        a = [other[q] for p, q in pairs if p == i]
        b = [other[q] for p, q in pairs if p == i + 1]

        def sim(x: Image.Image, grp: list[Image.Image]) -> float:
            return sum(1 - _ref_scores(x, g)[2] for g in grp)

        now = sim(ls[i], a) + sim(ls[i + 1], b)
        alts = [sim(m, a) + sim(m, b)]
        if i + 2 < len(ls):
            alts += [sim(m, a) + sim(ls[i + 2], a), sim(m, a) + sim(ls[i + 2], b)]
        if max(alts) > now:
            found.append((i, max(alts) - now))
    return max(found, key=lambda t: t[1]) if found else None  # max keeps the first of equal gains


def _ref_evaluate(pred_u8: list[np.ndarray], gt_u8: list[np.ndarray], max_edits: int = 5) -> list[dict]:
    pred = _ref_group([Image.fromarray(x, "RGBA") for x in pred_u8])
    gt = _ref_group([Image.fromarray(x, "RGBA") for x in gt_u8])
    path, scores = _ref_align(pred, gt)
    out = [dict(scores, n_pred=len(pred), n_gt=len(gt))]
    while len(out) <= max_edits:
        bp = _ref_side(pred, gt, path)
        bg = _ref_side(gt, pred, [(j, i) for i, j in path])
        if bp is None and bg is None:
            break
        ls, (i, _) = (pred, bp) if bp is not None and (bg is None or bp[1] > bg[1]) else (gt, bg)
        ls[i:i + 2] = [Image.alpha_composite(ls[i], ls[i + 1])]
        path, scores = _ref_align(pred, gt)
        out.append(dict(scores, n_pred=len(pred), n_gt=len(gt)))
    return out


def _ref_aggregate(results: list[list[dict]]) -> list[dict]:
    rows = []
    for k in range(max(len(r) for r in results)):
        rows.append({"merges": k, "count": sum(len(r) > k for r in results),
                     "edits": float(np.mean([min(len(r) - 1, k) for r in results])),
                     **{m: float(np.mean([(r[k] if len(r) > k else r[-1])[m] for r in results]))
                        for m in ("cost", "rgb_l1", "alpha_iou")}})
    return rows


# ----------------------------------------------------------------------------- fixtures


def _stack(rng: np.random.Generator, n: int, size: int = 20) -> list[np.ndarray]:
    """An opaque textured background and ``n − 1`` overlapping rectangles of random colour and alpha."""
    bg = np.concatenate([rng.integers(0, 256, (size, size, 3)), np.full((size, size, 1), 255)], -1).astype(np.uint8)
    out = [bg]
    for _ in range(n - 1):
        layer = np.zeros((size, size, 4), np.uint8)
        y, x = rng.integers(0, size - 5, 2)
        h, w = rng.integers(4, 12, 2)
        layer[y:y + h, x:x + w, :3] = rng.integers(0, 256, 3)
        layer[y:y + h, x:x + w, 3] = rng.choice([255, 200, 128, 60])
        out.append(layer)
    return out


CASES = [(_stack(np.random.default_rng([7, t]), 2 + t % 5), _stack(np.random.default_rng([8, t]), 2 + (t * 3) % 5))
         for t in range(16)]
KEYS = ("cost", "rgb_l1", "alpha_iou", "n_pred", "n_gt")

# ----------------------------------------------------------------------------- tests


def test_matches_the_reference_on_random_stacks() -> None:
    depths, sides, differs = [], set(), 0
    for pred, gt in CASES:
        ours = LP.evaluate_stacks_layerd(pred, gt, max_merges=5)
        ref = _ref_evaluate(pred, gt, 5)
        assert len(ours) == len(ref)
        for o, r in zip(ours, ref):
            for k in KEYS:
                assert o[k] == pytest.approx(r[k], abs=1e-12), k
        depths.append(len(ours) - 1)
        sides |= {o["merged"].split(":")[0] for o in ours[1:]}
        mine = ML.evaluate_stacks([x / 255.0 for x in pred], [x / 255.0 for x in gt], max_merges=5)
        differs += any(abs(a["cost"] - b["cost"]) > 1e-6 for a, b in zip(ours[1:], mine[1:])) or len(mine) != len(ours)
    # the cases exercise the rule: several merges, on both stacks; layerkit's protocol differs on some
    assert max(depths) >= 3 and sides == {"pred", "gt"} and differs >= 1
    per_sample = [LP.evaluate_stacks_layerd(p, g) for p, g in CASES]
    for o, r in zip(LP.aggregate_layerd(per_sample), _ref_aggregate([_ref_evaluate(p, g) for p, g in CASES])):
        assert (o["merges"], o["reached"], o["samples"]) == (r["merges"], r["count"], len(CASES))
        assert o["avg_merges"] == pytest.approx(r["edits"])
        for k in ("cost", "rgb_l1", "alpha_iou"):
            assert o[k] == pytest.approx(r[k], abs=1e-12)


def test_gain_is_estimated_from_the_matches_not_re_aligned() -> None:
    """A merge with a positive estimated gain is taken even when the re-aligned cost rises."""
    def rises(levels: list[dict]) -> bool:
        return any(b["cost"] > a["cost"] + 1e-9 for a, b in zip(levels, levels[1:]))

    rose = [(p, g) for p, g in CASES if rises(LP.evaluate_stacks_layerd(p, g))]
    assert rose, "no case where LayerD's rule raises the cost"
    levels = LP.evaluate_stacks_layerd(*rose[0])
    assert rises(_ref_evaluate(*rose[0]))
    assert all(lv["gain"] > 0 for lv in levels[1:])
    exact = ML.evaluate_stacks([x / 255.0 for x in rose[0][0]], [x / 255.0 for x in rose[0][1]])
    assert all(b["cost"] < a["cost"] for a, b in zip(exact, exact[1:]))  # layerkit's rule only ever lowers it


def test_gain_by_the_formula() -> None:
    """Level 1's gain equals s(m, A) + max(s(m, B), s(l2, A), s(l2, B)) − s(l0, A) − s(l1, B) written out."""
    bg = np.full((8, 8, 4), 255, np.uint8)
    red, green = np.zeros_like(bg), np.zeros_like(bg)
    red[1:5, 1:5] = [255, 0, 0, 255]
    green[3:7, 3:7] = [0, 255, 0, 128]
    fused = LP.composite_u8(red, green)
    gt, pred = [bg, red, green], [bg, fused]
    levels = LP.evaluate_stacks_layerd(pred, gt, group=False)
    assert levels[0]["path"] == [[0, 0], [1, 1], [1, 2]] and levels[1]["merged"] == "gt:1+2"

    def s(x: np.ndarray, y: np.ndarray) -> float:
        return 1 - LP.layerd_pair_scores(x, y)[2]  # GT layer first on the GT side

    m = LP.composite_u8(red, green)  # GT layers 1+2; A = pred[1], B = pred[1], no layer 3
    assert levels[1]["gain"] == pytest.approx(s(m, fused) + s(m, fused) - s(red, fused) - s(green, fused), abs=1e-12)
    assert levels[1]["cost"] == 0.0  # PIL's 8-bit composite of the GT is exactly the fused prediction
    assert len(levels) == 2  # both stacks have 2 layers now: nothing can merge


def test_pil_compositing_and_uint8_input() -> None:
    from layerkit.ops.compositing import over

    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, 256, (64, 64, 4)).astype(np.uint8) for _ in range(2))
    want = np.asarray(Image.alpha_composite(Image.fromarray(a, "RGBA"), Image.fromarray(b, "RGBA")))
    assert np.array_equal(LP.composite_u8(a, b), want)
    # PIL's integer arithmetic is not float "over" rounded to 8 bits (0.5 % of random pixels differ)
    assert not np.array_equal(LP.as_uint8(over(b / 255.0, a / 255.0)), want)
    assert np.array_equal(LP.as_uint8(a / 255.0), a) and LP.as_uint8(a) is not None
    with pytest.raises(ValueError, match="H×W×4"):
        LP.as_uint8(np.zeros((4, 4, 3)))


def test_aggregate_reports_only_reached_levels() -> None:
    a = [{"cost": 0.4, "rgb_l1": 0.2, "alpha_iou": 0.5, "n_pred": 3, "n_gt": 4},
         {"cost": 0.3, "rgb_l1": 0.1, "alpha_iou": 0.6, "n_pred": 3, "n_gt": 3},
         {"cost": 0.5, "rgb_l1": 0.3, "alpha_iou": 0.4, "n_pred": 2, "n_gt": 3}]
    b = [{"cost": 0.0, "rgb_l1": 0.0, "alpha_iou": 1.0, "n_pred": 2, "n_gt": 2}]
    rows = LP.aggregate_layerd([a, b])
    assert [r["merges"] for r in rows] == [0, 1, 2] and [r["reached"] for r in rows] == [2, 1, 1]
    assert [r["avg_merges"] for r in rows] == [0.0, 0.5, 1.0]
    assert rows[2]["cost"] == pytest.approx(0.25) and rows[1]["alpha_iou"] == pytest.approx(0.8)
    assert LE.aggregate([a, b], max_merges=5, protocol="layerkit")[-1]["merges"] == 5
    assert LP.aggregate_layerd([]) == []


def test_too_few_layers_and_protocol_names() -> None:
    assert LP.too_few_layers(1, 3) is not None and "prediction" in LP.too_few_layers(1, 3)
    assert "ground truth" in LP.too_few_layers(2, 1) and LP.too_few_layers(2, 2) is None
    with pytest.raises(ConfigError, match="layerd, layerkit"):
        LE.check_protocol("LayerD")
    with pytest.raises(ValueError, match="canvas"):
        LP.evaluate_stacks_layerd([np.zeros((4, 4, 4), np.uint8)], [np.zeros((5, 4, 4), np.uint8)])


def test_equal_gains_merge_the_ground_truth() -> None:
    """LayerD merges the GT when both stacks offer the same gain (found among small swapped stacks)."""
    rng = np.random.default_rng(0)
    bg = np.zeros((6, 6, 4), np.uint8)
    bg[..., 3] = 255
    for _ in range(50):
        rects = []
        for _ in range(2):
            layer = np.zeros_like(bg)
            y, x = rng.integers(0, 4, 2)
            h, w = rng.integers(2, 4, 2)
            layer[y:y + h, x:x + w] = 255
            rects.append(layer)
        pred, gt = [bg, *rects], [bg, *rects[::-1]]
        p_img, g_img = ([Image.fromarray(x, "RGBA") for x in s] for s in (pred, gt))
        path, _ = _ref_align(p_img, g_img)
        bp, bgain = _ref_side(p_img, g_img, path), _ref_side(g_img, p_img, [(j, i) for i, j in path])
        if bp is not None and bgain is not None and bp[1] == bgain[1]:
            break
    else:
        pytest.fail("no tie found")
    levels = LP.evaluate_stacks_layerd(pred, gt, group=False, max_merges=1)
    assert levels[1]["merged"] == f"gt:{bgain[0]}+{bgain[0] + 1}"
    assert levels[1]["cost"] == pytest.approx(_ref_evaluate(pred, gt, 1)[1]["cost"], abs=1e-12)
