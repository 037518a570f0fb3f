"""LayerD-style multi-layer scores: pair metrics, DTW, grouping, greedy merges, aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.evaluation import multilayer as ML


def _layer(h: int, w: int, rgb: tuple[float, float, float], box: tuple[int, int, int, int] | None = None,
           a: float = 1.0) -> np.ndarray:
    out = np.zeros((h, w, 4), np.float32)
    x0, y0, x1, y1 = box or (0, 0, w, h)
    out[y0:y1, x0:x1] = [*rgb, a]
    return out


H = W = 8
BG = _layer(H, W, (0.5, 0.5, 0.5))
RED = _layer(H, W, (1.0, 0.0, 0.0), (1, 1, 4, 4))      # 9 px
GREEN = _layer(H, W, (0.0, 1.0, 0.0), (2, 2, 6, 6))    # 16 px, overlaps RED on 4 px
BLUE = _layer(H, W, (0.0, 0.0, 1.0), (6, 6, 8, 8))     # 4 px, overlaps nothing but BG


def test_pair_scores_by_hand() -> None:
    assert ML.pair_scores(RED, RED) == (0.0, 1.0, 0.0)
    l1, iou, cost = ML.pair_scores(GREEN, RED)
    # over RED's 9 px: 4 px green (|Δ| = (1+1+0)/3), 5 px empty RGB 0 (|Δ| = 1/3)
    assert l1 == pytest.approx((4 * 2 / 3 + 5 * 1 / 3) / 9)
    assert iou == pytest.approx(4 / (9 + 16 - 4))
    assert cost == pytest.approx((l1 + 1 - iou) / 2)
    empty = np.zeros_like(RED)
    assert ML.pair_scores(empty, empty) == (0.0, 0.0, 0.5)  # LayerD: IoU of two empty layers is 0


def test_dtw_path_examples() -> None:
    assert ML.dtw_path(np.eye(3) * -1 + 1) == [(0, 0), (1, 1), (2, 2)]
    assert ML.dtw_path(np.array([[0, 1, 1], [1, 0, 0]])) == [(0, 0), (1, 1), (1, 2)]
    assert ML.dtw_path(np.array([[0.3, 0.1, 0.2]])) == [(0, 0), (0, 1), (0, 2)]
    assert ML.dtw_path(np.array([[0.0]])) == [(0, 0)]
    # the cheap route goes down first, then across
    c = np.array([[0, 5, 5], [0, 5, 5], [5, 0, 0]])
    assert ML.dtw_path(c) == [(0, 0), (1, 0), (2, 1), (2, 2)]
    with pytest.raises(ValueError):
        ML.dtw_path(np.zeros((0, 2)))


def test_disjoint_groups() -> None:
    assert ML.disjoint_groups([BG[..., 3], RED[..., 3], BLUE[..., 3]]) == [[0], [1, 2]]
    assert ML.disjoint_groups([BG[..., 3], RED[..., 3], GREEN[..., 3]]) == [[0], [1], [2]]
    # BLUE is under GREEN in order but disjoint from it: it joins the top group
    assert ML.disjoint_groups([BG[..., 3], RED[..., 3], BLUE[..., 3], GREEN[..., 3]]) == [[0], [1], [2, 3]]


def test_merge_is_over() -> None:
    half = _layer(H, W, (1.0, 1.0, 1.0), a=0.5)
    m = ML.merge([BG, half])
    assert np.allclose(m[0, 0], [0.75, 0.75, 0.75, 1.0])


def test_identical_stacks_score_perfectly() -> None:
    levels = ML.evaluate_stacks([BG, RED, GREEN], [BG, RED, GREEN])
    assert len(levels) == 1
    assert levels[0]["cost"] == 0.0 and levels[0]["alpha_iou"] == 1.0 and levels[0]["path"] == [[0, 0], [1, 1], [2, 2]]


def test_one_layer_vs_many_by_hand() -> None:
    levels = ML.evaluate_stacks([BG], [BG, RED], group=False, max_merges=3)
    l1 = abs(0.5 - 1.0) / 3 + 0.5 / 3 + 0.5 / 3      # grey vs red over RED's pixels
    iou = 9 / 64
    assert levels[0]["path"] == [[0, 0], [0, 1]]
    assert levels[0]["cost"] == pytest.approx((0.0 + (l1 + 1 - iou) / 2) / 2)
    assert levels[0]["rgb_l1"] == pytest.approx(l1 / 2)
    assert levels[0]["alpha_iou"] == pytest.approx((1 + iou) / 2)
    assert len(levels) == 1  # two-layer GT is not merged (min_layers = 2)


def test_greedy_merge_fixes_a_split_object() -> None:
    pred = [BG, ML.merge([RED, GREEN])]   # the prediction fused two objects
    gt = [BG, RED, GREEN]
    levels = ML.evaluate_stacks(pred, gt, group=False)
    assert levels[0]["cost"] > 0
    assert levels[1]["merged"] == "gt:1+2" and levels[1]["cost"] == pytest.approx(0.0)
    assert len(levels) == 2  # nothing left to gain


def test_grouping_joins_disjoint_objects() -> None:
    pred = [BG, ML.merge([RED, BLUE])]
    levels = ML.evaluate_stacks(pred, [BG, RED, BLUE])  # RED and BLUE are one group in the GT
    assert levels[0]["n_gt"] == 2 and levels[0]["cost"] == pytest.approx(0.0)


def test_aggregate_carries_the_last_level() -> None:
    a = [{"cost": 0.4, "rgb_l1": 0.2, "alpha_iou": 0.5, "n_pred": 3, "n_gt": 4},
         {"cost": 0.2, "rgb_l1": 0.1, "alpha_iou": 0.7, "n_pred": 3, "n_gt": 3}]
    b = [{"cost": 0.0, "rgb_l1": 0.0, "alpha_iou": 1.0, "n_pred": 2, "n_gt": 2}]
    rows = ML.aggregate_levels([a, b], max_merges=2)
    assert [r["merges"] for r in rows] == [0, 1, 2]
    assert rows[0]["cost"] == pytest.approx(0.2) and rows[1]["cost"] == pytest.approx(0.1)
    assert rows[2]["cost"] == pytest.approx(0.1) and rows[2]["alpha_iou"] == pytest.approx(0.85)


def test_size_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="canvas"):
        ML.evaluate_stacks([BG], [np.zeros((4, 4, 4), np.float32)])
