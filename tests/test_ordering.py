"""Occlusion ordering: the continuation orderer (occlusion.py) and the fitted-cue orderer (cues.py), the ranking, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from test_dataset import sources  # noqa: F401  (fixture)

from layerkit.modules.orderer.evidence import object_box
from layerkit.modules.orderer.occlusion import continuation_score, occlusion_order, pair_score, rank, split_contested
from layerkit.types import Prompt

H, W = 80, 120


def scene() -> tuple[list[np.ndarray], np.ndarray]:
    """A disc with its right part behind a square, a bar far away; alphas of the visible parts, image."""
    yy, xx = np.mgrid[:H, :W]
    disc = ((xx - 40) ** 2 + (yy - 40) ** 2 <= 22 ** 2).astype(np.float32)
    square = ((xx >= 50) & (xx < 80) & (yy >= 25) & (yy < 60)).astype(np.float32)
    bar = ((xx >= 95) & (xx < 115) & (yy >= 5) & (yy < 75)).astype(np.float32)
    image = np.zeros((H, W, 3), np.float32)
    image[disc > 0] = (0.9, 0.3, 0.1)
    image[square > 0] = (0.1, 0.2, 0.9)
    image[bar > 0] = (0.2, 0.8, 0.2)
    return [disc * (1 - square), square, bar], image


def test_continuation_points_at_the_object_behind() -> None:
    (disc, square, _), _ = scene()
    assert continuation_score(square > 0.5, disc > 0.5) > 0.5       # the disc continues behind the square
    assert continuation_score(disc > 0.5, square > 0.5) < -0.5      # antisymmetric
    empty = np.zeros_like(disc, bool)
    assert continuation_score(empty, disc > 0.5) == 0.0             # no evidence


@pytest.mark.parametrize("perm", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_order_puts_the_occluder_first_whatever_the_given_order(perm: tuple[int, int, int]) -> None:
    alphas, image = scene()
    a = [alphas[i] for i in perm]
    order = occlusion_order(a, [object_box(x) for x in a], image)
    pos = {perm[k]: r for r, k in enumerate(order)}
    assert pos[1] < pos[0]                                          # square before disc
    assert sorted(order) == [0, 1, 2]


def test_swallowed_occluder_is_split_by_colour() -> None:
    (disc, square, _), image = scene()
    swallowing = np.maximum(disc, square * (np.mgrid[:H, :W][1] < 62))   # the disc's mask took part of the square
    si, sj = split_contested(image, swallowing > 0.5, square > 0.5)
    assert not (si & sj).any() and sj.sum() == (square > 0.5).sum()
    assert pair_score(square, swallowing, object_box(square), object_box(swallowing), image) > 0


def test_rank_is_the_best_agreeing_permutation_and_greedy_above_the_limit() -> None:
    s = np.array([[0, -1, 0.2], [1, 0, 0.5], [-0.2, -0.5, 0]])
    assert rank(s) == [1, 0, 2]
    assert rank(np.zeros((3, 3))) == [0, 1, 2]                      # ties keep the given order
    n = 9
    big = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            big[i, j] = np.sign(j - i)                              # i in front of every later j
    assert rank(big) == list(range(n))


def test_bad_input() -> None:
    alphas, image = scene()
    with pytest.raises(ValueError, match="alphas but"):
        occlusion_order(alphas, [None], image)


# ---- the fitted-cue orderer (layerkit/modules/orderer/cues.py), on synthetic textured scenes ----

CH, CW = 120, 160


def _texture(base: tuple[float, float, float], seed: int) -> np.ndarray:
    """A ``CH×CW×3`` smooth random texture around colour ``base``."""
    import cv2

    noise = np.random.default_rng(seed).normal(0, 0.15, (CH // 4 + 1, CW // 4 + 1, 3)).astype(np.float32)
    return np.clip(np.asarray(base, np.float32) + cv2.resize(noise, (CW, CH)), 0, 1)


def _paint(layers: list[tuple[np.ndarray, tuple[float, float, float]]]) -> np.ndarray:
    """Composite bool masks bottom → top, each filled with its own texture, over a textured ground."""
    img = _texture((0.3, 0.4, 0.5), 1)
    for k, (m, col) in enumerate(layers):
        img[m] = _texture(col, k + 2)[m]
    return img


def _prompts(alphas: list[np.ndarray]) -> list[Prompt]:
    from layerkit.types import alpha_bbox

    return [Prompt(boxes=[list(alpha_bbox(a, 0.5))]) for a in alphas]


def bar_scene() -> tuple[np.ndarray, list[np.ndarray]]:
    """A thin diagonal bar in front of a square: the bar fills little of its box, the square most of the overlap."""
    yy, xx = np.mgrid[:CH, :CW]
    square = (xx >= 40) & (xx < 120) & (yy >= 20) & (yy < 100)
    bar = (np.abs((yy - 10) - 0.9 * (xx - 30)) / np.hypot(1, 0.9) < 5) & (yy > 5) & (yy < 115) & (xx > 25) & (xx < 150)
    img = _paint([(square, (0.8, 0.6, 0.2)), (bar, (0.2, 0.7, 0.3))])
    return img, [(square & ~bar).astype(np.float32), bar.astype(np.float32)]     # [behind, front]


def swallow_scene() -> tuple[np.ndarray, list[np.ndarray]]:
    """A disc in front of a square of the same colours; the square's first-pass mask swallowed the
    part of the disc inside its box (both claim it, colour cannot tell)."""
    yy, xx = np.mgrid[:CH, :CW]
    square = (xx >= 20) & (xx < 100) & (yy >= 20) & (yy < 100)
    disc = (xx - 100) ** 2 + (yy - 60) ** 2 <= 30 ** 2
    img = _paint([(square, (0.6, 0.5, 0.3)), (disc, (0.6, 0.5, 0.3))])
    swallowed = square | (disc & (xx < 100))
    return img, [swallowed.astype(np.float32), disc.astype(np.float32)]            # [behind, front]


SWALLOW_XFAIL = pytest.mark.xfail(strict=True, reason=(
    "the licence-clean weights (fitted on procedural stacks) give the swallow cues `tight` / `tight_g` "
    "weight 0: no fitting stack shows a same-colour occluder swallowed by the mask behind it "
    "(docs/multilayer.md, 'Fitting data'); the GPL-fitted weights before 2026-12-02 ordered this case"))


@pytest.mark.parametrize("make", [bar_scene, pytest.param(swallow_scene, marks=SWALLOW_XFAIL)],
                         ids=["thin-occluder", "swallowed-same-colour"])
@pytest.mark.parametrize("perm", [(0, 1), (1, 0)])
def test_cues_order_cases_the_old_orderers_get_wrong(make, perm: tuple[int, int]) -> None:
    from layerkit.modules.orderer.cues import CueOrderer
    from layerkit.modules.orderer.evidence import OcclusionOrderer

    img, alphas = make()
    a = [alphas[i] for i in perm]
    pr = _prompts(a)
    front = perm.index(1)
    assert CueOrderer()(img, a, pr)[0] == front
    assert CueOrderer(image_cues=True)(img, a, pr)[0] == front
    # the old default (evidence: cover / contested colour) puts the one behind first here
    assert OcclusionOrderer()(img, a, pr)[0] != front


def test_thin_occluder_cues_point_the_right_way() -> None:
    """The T-junction cues on their own: the bar's outline runs straight through the junctions, the square's turns."""
    from layerkit.modules.orderer.cues import junction_straightness

    _, (square, bar) = bar_scene()
    assert junction_straightness(bar > 0.5, square > 0.5, 10) > 0.2
    assert continuation_score(bar > 0.5, square > 0.5) > 0.5           # the square continues behind the bar


def test_swallowed_occluder_is_found_by_box_tightness() -> None:
    from layerkit.modules.orderer.cues import box_shrink, tightness

    _, (swallowed, disc) = swallow_scene()
    box_sq, box_disc = (20, 20, 100, 100), (70, 30, 131, 91)
    assert box_shrink(disc > 0.5, box_disc) == 0.0
    assert box_shrink(np.zeros_like(disc, bool), box_disc) == 4.0
    # "square in front" leaves the disc only its part right of x = 100: far from its box's left side
    assert tightness(disc > 0.5, swallowed > 0.5, box_disc, box_sq) > 0.9
    assert tightness(swallowed > 0.5, disc > 0.5, box_sq, box_disc) < -0.9


@pytest.mark.parametrize("image_cues", [False, True], ids=["default", "image-cues"])
def test_three_object_stack_in_every_given_order(image_cues: bool) -> None:
    """Square behind a disc, a diagonal bar in front of both: the whole order, whatever the given order."""
    import itertools

    from layerkit.modules.orderer.cues import CueOrderer

    yy, xx = np.mgrid[:CH, :CW]
    square = (xx >= 10) & (xx < 80) & (yy >= 15) & (yy < 95)
    disc = (xx - 95) ** 2 + (yy - 60) ** 2 <= 32 ** 2
    bar = (np.abs((yy - 5) - 0.8 * (xx - 55)) / np.hypot(1, 0.8) < 5) & (yy > 2) & (yy < 118)
    img = _paint([(square, (0.8, 0.6, 0.2)), (disc, (0.7, 0.2, 0.6)), (bar, (0.2, 0.7, 0.3))])
    vis = [square & ~disc & ~bar, disc & ~bar, bar]                        # back → front
    for perm in itertools.permutations(range(3)):
        a = [vis[i].astype(np.float32) for i in perm]
        order = CueOrderer(image_cues=image_cues)(img, a, _prompts(a))
        assert [perm[k] for k in order] == [2, 1, 0], perm


def test_cue_features_are_antisymmetric_and_zero_apart() -> None:
    from layerkit.modules.orderer.cues import FEATURES, pair_features

    img, (back, front) = swallow_scene()
    bb, bf = object_box(back), object_box(front)
    f = pair_features(img, back, front, bb, bf, bb, bf)
    g = pair_features(img, front, back, bf, bb, bf, bb)
    assert f.shape == (len(FEATURES),) and np.abs(f).max() > 0.1
    np.testing.assert_allclose(f, -g, atol=1e-9)
    far = np.zeros_like(back)
    far[5:15, 145:155] = 1
    assert not pair_features(img, back, far, bb, object_box(far)).any()


def test_cue_orderer_bad_input() -> None:
    from layerkit import Pipeline
    from layerkit.errors import ConfigError
    from layerkit.modules.orderer.cues import CueOrderer, score_matrix

    with pytest.raises(ConfigError, match="orderer.weights needs"):
        CueOrderer(weights=(1.0, 2.0))
    with pytest.raises(ConfigError, match="orderer.weights needs"):
        Pipeline.from_config("classical", {"orderer.weights": [1.0]})
    with pytest.raises(ConfigError, match="finite"):   # a NaN weight would make every pair score NaN
        Pipeline.from_config("classical", {"orderer.weights": [float("nan")] + [0.0] * 14})
    with pytest.raises(ConfigError, match="finite"):
        CueOrderer(weights=(float("inf"),) + (0.0,) * 17)
    img, alphas = bar_scene()
    with pytest.raises(ValueError, match="alphas but"):
        score_matrix(img, alphas, [None])
    assert type(Pipeline.from_config("classical").orderer).__name__ == "CueOrderer"   # the default backend


def test_image_t_junctions_and_completion_point_at_the_occluder() -> None:
    """The image T-junction cue (edge orientations at the junctions) and the completion-informed cue
    (the amodal shape continued into the other) on the thin bar in front of the square, and the
    reverse arguments give the reverse sign."""
    from layerkit.modules.orderer.cues import edge_gradients, junction_orientation, outline_continuation

    img, (square, bar) = bar_scene()
    g = edge_gradients(img)
    sq, br = square > 0.5, bar > 0.5
    assert junction_orientation(g, br, sq, 14) > 0.2                  # the bar's outline runs on as the shared edge
    assert junction_orientation(g, sq, br, 14) < -0.2
    assert outline_continuation(br, sq) > 0.5                          # the square continues behind the bar
    assert outline_continuation(sq, br) < -0.5
    empty = np.zeros_like(sq)
    assert junction_orientation(g, empty, sq) == 0.0 and outline_continuation(empty, empty) == 0.0
    (disc, square2, _), _ = scene()
    assert outline_continuation(square2 > 0.5, disc > 0.5) > 0.2      # the disc's right part is behind the square


def test_default_weights_leave_the_added_cues_off() -> None:
    """The default 15-value weight vector scores as the full vector with the added cues at 0 (and then
    does not measure them); ``image_cues`` selects the weights of all cues, from a config too."""
    from layerkit import Pipeline
    from layerkit.errors import ConfigError
    from layerkit.modules.orderer.cues import BASE_FEATURES, FEATURES, IMAGE_WEIGHTS, WEIGHTS, CueOrderer, pair_features, score_matrix

    img, alphas = bar_scene()
    pr = _prompts(alphas)
    w15 = tuple(WEIGHTS)
    assert len(w15) == BASE_FEATURES and len(IMAGE_WEIGHTS) == len(FEATURES)
    padded = w15 + (0.0,) * (len(FEATURES) - BASE_FEATURES)
    np.testing.assert_allclose(score_matrix(img, alphas, pr, w15), score_matrix(img, alphas, pr, padded))
    assert CueOrderer(w15)(img, alphas, pr) == CueOrderer(padded)(img, alphas, pr)
    boxes = [object_box(a) for a in alphas]
    off = pair_features(img, alphas[0], alphas[1], *boxes, *boxes, extra=False)
    on = pair_features(img, alphas[0], alphas[1], *boxes, *boxes)
    assert not off[BASE_FEATURES:].any() and np.abs(on[BASE_FEATURES:]).max() > 0.1
    np.testing.assert_allclose(off[:BASE_FEATURES], on[:BASE_FEATURES])
    with pytest.raises(ValueError, match="one value per feature"):
        score_matrix(img, alphas, pr, WEIGHTS[:BASE_FEATURES - 1])
    with pytest.raises(ValueError, match="finite"):
        score_matrix(img, alphas, pr, (float("nan"),) + WEIGHTS[1:])
    assert Pipeline.from_config("classical", {"orderer.image_cues": True}).orderer.weights == IMAGE_WEIGHTS
    assert Pipeline.from_config("classical").orderer.weights == WEIGHTS
    with pytest.raises(ConfigError, match="not both"):
        CueOrderer(weights=IMAGE_WEIGHTS, image_cues=True)


def test_ordering_benchmark_on_the_exact_visible_parts(sources, tmp_path, capsys) -> None:  # noqa: F811
    """benchmarks/ordering.py --gt-visible caches each GT alpha times what the GT layers above it transmit
    (the top one whole), and refuses a first-pass --config it would not use."""
    import json

    from conftest import load_benchmark

    from layerkit.evaluation.dataset import find_layer_samples, make_dataset

    bench = load_benchmark("ordering")
    fg, bg = sources
    data = make_dataset(fg, bg, tmp_path / "multi", n=2, objects=(3, 3), seed=1, occlusion=(0.3, 0.6), cover=(0.08, 0.2))
    out = tmp_path / "bench"
    assert bench.main([str(data), "-o", str(out), "--gt-visible", "--limit", "1"]) == 0
    s = find_layer_samples(data)[0]
    a = [layer.alpha for layer in s.ground_truth().layers[1:]]                    # bottom → top
    got = np.load(out / "alphas_gt" / f"{s.id}.npz")["alphas"].astype(np.float32)
    want = [a[0] * (1 - a[1]) * (1 - a[2]), a[1] * (1 - a[2]), a[2]]
    np.testing.assert_allclose(got, np.stack(want), atol=2e-3)                    # float16 cache
    assert (a[0] > 0.5).sum() > (got[0] > 0.5).sum()                              # the bottom object is partly hidden
    summary = json.loads((out / "summary_gt.json").read_text())
    assert set(summary) == set(bench.ORDERERS) and summary["cues"]["stacks"] == 1
    assert not (out / "alphas").exists()                                          # no first pass was run
    capsys.readouterr()
    assert bench.main([str(data), "-o", str(out), "--gt-visible", "--config", "classical"]) == 2
    assert "--config" in capsys.readouterr().err
