"""Completion stage (role ``completion``): hidden parts continued and filled, composite unchanged; amodal metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_dataset import sources  # noqa: F401  (fixture)

from layerkit.errors import ConfigError
from layerkit.evaluation.amodal import covers, evaluate_complete, layer_scores
from layerkit.modules.completion.exemplar import ExemplarCompleter, compensate, fill_from_source
from layerkit.modules.completion.shape import _outline, amodal_shape
from layerkit.registry import build
from layerkit.types import Layer, LayerStack

H, W = 96, 128


def scene() -> tuple[LayerStack, LayerStack]:
    """GT stack (a striped orange disc, its right part under an opaque blue square) and the
    same stack with the disc's hidden part cut out (what a peeler without completion gives)."""
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    bg = np.stack([0.2 + 0.3 * xx / W, 0.5 + 0 * xx, 0.3 + 0.2 * yy / H], axis=2).astype(np.float32)
    disc = (((xx - 55) ** 2 + (yy - 48) ** 2) <= 28 ** 2).astype(np.float32)
    stripes = 0.5 + 0.5 * (np.sin(xx / 2.0) > 0)
    disc_rgb = np.stack([0.9 * stripes, 0.45 * stripes, 0.05 + 0 * xx], axis=2).astype(np.float32)
    square = ((xx >= 62) & (xx < 100) & (yy >= 25) & (yy < 75)).astype(np.float32)
    sq_rgb = np.broadcast_to(np.float32((0.05, 0.1, 0.95)), (H, W, 3))
    gt = LayerStack([Layer.from_rgb(bg, name="background"),
                     Layer(np.concatenate([disc_rgb * disc[..., None], disc[..., None]], 2), name="disc"),
                     Layer(np.concatenate([sq_rgb * square[..., None], square[..., None]], 2), name="square")])
    cut = disc * (1 - square)
    peeled = LayerStack([gt[0], Layer(np.concatenate([disc_rgb * cut[..., None], cut[..., None]], 2), name="disc"), gt[2]])
    return gt, peeled


def test_completion_continues_shape_and_keeps_composite() -> None:
    gt, peeled = scene()
    out = ExemplarCompleter()(peeled)
    assert np.abs(out.composite() - peeled.composite()).max() < 1e-5      # hidden under an opaque layer
    assert np.array_equal(out[2].rgba, peeled[2].rgba)                     # the top layer is not touched
    before = evaluate_complete([x.rgba for x in peeled], [x.rgba for x in gt], gt.composite())
    after = evaluate_complete([x.rgba for x in out], [x.rgba for x in gt], gt.composite())
    b, a = before["layers"][0], after["layers"][0]
    assert b["iou_occ"] < 0.05 and a["iou_occ"] > 0.8                     # the disc goes on behind the square
    assert a["hidden_l1"] < 0.5 * b["hidden_l1"]
    assert a["soft_iou"] > b["soft_iou"]
    assert after["recompose_psnr"] > 60


def test_fill_never_takes_the_occluders_colour() -> None:
    _, peeled = scene()
    out = ExemplarCompleter(fill="exemplar")(peeled)
    new = (out[1].alpha > 0.5) & (peeled[1].alpha == 0)
    assert new.sum() > 200
    rgb = out[1].rgb[new]
    assert rgb[:, 2].max() < 0.2 and rgb[:, 0].min() > 0.3                  # orange from the disc, no blue
    levels = np.unique(np.round(rgb[:, 0], 1))
    assert len(levels) >= 2                                                  # the stripes are copied, not averaged


@pytest.mark.parametrize("fill", ["harmonic", "texture", "exemplar"])
def test_fill_from_source_only_uses_source(fill: str) -> None:
    img = np.zeros((40, 40, 3), np.float32)
    img[:, :20] = (0.8, 0.2, 0.1)
    img[:, 20:] = (0.0, 0.0, 1.0)        # not source: must not leak in
    source = np.zeros((40, 40), bool)
    source[:, :16] = True
    target = np.zeros((40, 40), bool)
    target[:, 16:26] = True
    out = fill_from_source(img, source, target, fill)
    assert np.allclose(out[source], img[source])
    assert np.abs(out[target] - np.float32((0.8, 0.2, 0.1))).max() < 0.02


def test_amodal_shape_is_inside_hidden_region() -> None:
    _, peeled = scene()
    hidden = peeled[2].alpha > 0.5
    visible = peeled[1].alpha > 0.5
    for shape in ("auto", "hull", "extend", "ellipse"):
        m = amodal_shape(visible, hidden, shape)
        assert m.any() and not (m & ~hidden).any()
    assert not amodal_shape(visible, hidden, "none").any()


def test_compensate_restores_composite_under_soft_cover() -> None:
    gt, peeled = scene()
    layers = [x.rgba.copy() for x in peeled]
    layers[2][..., 3] *= 0.7                 # a half-transparent occluder
    target = LayerStack([Layer(x) for x in layers]).composite()
    layers[1][30:60, 70:90] = (0.9, 0.45, 0.05, 1.0)   # completion rewrote the lower layer there
    compensate(layers, target)
    assert np.abs(LayerStack([Layer(x) for x in layers]).composite() - target).max() < 2e-3


def test_input_stack_is_not_changed() -> None:
    """Completion under a half-transparent white occluder re-solves colours (compensate): the
    white top layer clips, the rest goes to the faint layer under it — in the new stack only."""
    _, peeled = scene()
    top = peeled[2].rgba.copy()
    top[..., :3] = 1.0
    top[..., 3] *= 0.7
    faint = top.copy()                        # α 0.21 < 0.5: nothing of it to complete, left as it is
    faint[..., :3], faint[..., 3] = 0.5, top[..., 3] * 0.3
    stack = LayerStack([Layer(peeled[0].rgba.copy()), Layer(peeled[1].rgba.copy()), Layer(faint), Layer(top)])
    before = [x.rgba.copy() for x in stack]
    out = ExemplarCompleter()(stack)
    assert not np.array_equal(out[1].rgba, before[1]) and not np.array_equal(out[2].rgba, before[2])
    assert all(np.array_equal(x.rgba, b) for x, b in zip(stack, before))
    assert np.abs(out.composite() - stack.composite()).max() < 2e-3


def test_two_layer_stack_is_returned_as_is() -> None:
    gt, _ = scene()
    two = LayerStack([gt[0], gt[1]])
    assert ExemplarCompleter()(two) is two


def test_ring_side_and_max_reach_limit_the_continuation() -> None:
    """An L-shaped visible part whose foot touches an occluder: the continuation grows out of the
    occluded end, not sideways past the object's own outline, and never beyond ``max_reach``."""
    vis = np.zeros((80, 80), bool)
    vis[10:70, 25:35] = True                  # the upright of the L, 5 px beside the occluder
    vis[60:70, 35:40] = True                  # its foot, running into the occluder at x = 40
    hid = np.zeros((80, 80), bool)
    hid[:, 40:] = True
    free = amodal_shape(vis, hid, "extend", depth=3.0)
    side = amodal_shape(vis, hid, "extend", depth=3.0, ring_side=True)
    assert side.any() and not (side & ~free).any()
    assert side[40:60, 40:].sum() < free[40:60, 40:].sum()          # less growth up beside the upright
    assert side[60:70, 40:46].all()                                  # the foot goes on behind
    near = amodal_shape(vis, hid, "extend", depth=3.0, max_reach=0.2)
    far = cv2.distanceTransform((~vis).astype(np.uint8), cv2.DIST_L2, 3) / np.sqrt(vis.sum())
    assert near.any() and (far[near] <= 0.2).all() and near.sum() < free.sum()


def test_outline_continuation_closes_a_cut_disc() -> None:
    """A disc whose right part is under a square: the outline, continued with its own tangents
    from the two T-junctions, closes the disc behind the square (and the gap grows with bulge)."""
    yy, xx = np.mgrid[:H, :W]
    disc = ((xx - 55) ** 2 + (yy - 48) ** 2) <= 28 ** 2
    hid = (xx >= 62) & (xx < 100) & (yy >= 25) & (yy < 75)
    truth = disc & hid
    m = _outline(disc & ~hid, hid, 1.5) & hid
    assert (m & truth).sum() / (m | truth).sum() > 0.85
    assert (_outline(disc & ~hid, hid, 1.0) & hid).sum() < m.sum()
    assert not (_outline(disc & ~hid, np.zeros_like(hid), 1.5)).any()     # nothing hidden: nothing drawn


def test_given_amodal_mask_replaces_the_shape_continuation() -> None:
    gt, peeled = scene()
    cover = covers([x.alpha for x in peeled])[1].astype(np.float32)
    whole = gt[1].alpha > 0.5
    out = ExemplarCompleter().complete_layer(peeled[1].rgba, cover, amodal=whole)
    hidden = cover >= 0.5
    assert np.array_equal(out[..., 3][hidden] > 0.5, whole[hidden])
    assert np.array_equal(out[~hidden], peeled[1].rgba[~hidden])


@pytest.mark.parametrize("key,value", [("shape", "blob"), ("fill", "magic"), ("cover_threshold", 0.2),
                                       ("patch_size", 4), ("depth", -1.0), ("margin", -0.1), ("max_reach", 0.0),
                                       ("outline", -1.0)])
def test_bad_settings_raise_config_error(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"completion.{key}"):
        build("completion", "exemplar", {key: value})


def test_layer_scores_perfect_and_empty() -> None:
    gt, _ = scene()
    cov = covers([x.alpha for x in gt])
    perfect = layer_scores(gt[1].rgba, gt[1].rgba, cov[1])
    assert perfect["hidden_l1"] == 0 and perfect["iou_occ"] == 1 and perfect["soft_iou"] == 1
    assert perfect["visible_psnr"] == float("inf")
    empty = layer_scores(np.zeros_like(gt[1].rgba), gt[1].rgba, cov[1])
    assert empty["iou_occ"] == 0 and empty["soft_iou"] == 0 and empty["hidden_l1"] > 0.3
    res = evaluate_complete([x.rgba for x in gt], [x.rgba for x in gt], gt.composite(), match=[0, None, 2])
    assert res["layers"][0]["soft_iou"] == 0 and res["layers"][1]["soft_iou"] == 1
    with pytest.raises(ValueError, match="match lists"):
        evaluate_complete([x.rgba for x in gt], [x.rgba for x in gt], match=[0, 1])


def test_classical_layers_complete_hidden_parts_and_cli_switch(tmp_path) -> None:
    from PIL import Image

    from layerkit.cli import main
    from layerkit.pipelines.decompose import Pipeline
    from layerkit.pipelines.sequential import peel_layers
    from layerkit.types import Prompt

    gt, _ = scene()
    image = gt.composite()
    boxes = [[27, 20, 62, 77], [62, 25, 100, 75]]          # the disc's visible part, the square
    pipe = Pipeline.from_config("classical")
    assert type(pipe.completion).__name__ == "ExemplarCompleter"
    done = peel_layers(pipe, image, [Prompt(boxes=[b]) for b in boxes], order=[1, 0])
    pipe.completion = None
    plain = peel_layers(pipe, image, [Prompt(boxes=[b]) for b in boxes], order=[1, 0])
    under = gt[2].alpha > 0.5
    gt_hidden = under & (gt[1].alpha > 0.5)
    assert done.psnr >= 40 and abs(done.psnr - plain.psnr) < 3
    got, before = (done.stack[1].alpha[gt_hidden] > 0.5).mean(), (plain.stack[1].alpha[gt_hidden] > 0.5).mean()
    assert got > before + 0.3
    Image.fromarray((image * 255).round().astype("uint8")).save(tmp_path / "in.png")
    args = ["layers", str(tmp_path / "in.png"), "--box", "27,20,62,77", "--box", "62,25,100,75", "--order", "1,0", "--quiet"]
    assert main([*args, "-o", str(tmp_path / "on")]) == 0
    assert main([*args, "-o", str(tmp_path / "off"), "--set", "completion.backend=none"]) == 0
    on, off = LayerStack.load(tmp_path / "on"), LayerStack.load(tmp_path / "off")
    assert (on[1].alpha[gt_hidden] > 0.5).mean() > (off[1].alpha[gt_hidden] > 0.5).mean() + 0.3


def test_exact_peel_ceiling_of_the_completion_benchmark(sources, tmp_path) -> None:  # noqa: F811
    """benchmarks/completion.py --gt-visible: the exact peel is the GT cut to its visible parts, and completing it
    lowers the hidden-region error without touching the composite."""
    import json

    from conftest import load_benchmark

    from layerkit.evaluation.dataset import make_dataset

    bench = load_benchmark("completion")
    gt, peeled = scene()
    exact = bench.visible_stack([layer.rgba for layer in gt])
    assert len(exact) == len(peeled) == 3                              # zip below must not stop short
    for got, want in zip(exact, peeled):
        np.testing.assert_allclose(got.rgba, want.rgba, atol=1e-6)
    fg, bg = sources
    data = make_dataset(fg, bg, tmp_path / "multi", n=2, objects=(3, 3), seed=1, occlusion=(0.3, 0.6), cover=(0.08, 0.2))
    out = tmp_path / "bench"
    assert bench.main([str(data), "-o", str(out), "--gt-visible", "--gt-shape"]) == 0
    doc = json.loads((out / "summary.json").read_text())
    assert doc["peel"].startswith("exact")
    none, done = doc["none"], doc["completion"]
    assert done["hidden_l1"] < none["hidden_l1"]
    assert doc["gt shape"]["iou_occ"] == pytest.approx(1.0)
    assert none["recompose_min"] > 40 and done["recompose_min"] > 40
    for extra in (["--cache", str(tmp_path / "peels")], ["--order", "auto"]):   # options of the peel it replaces
        assert bench.main([str(data), "-o", str(out), "--gt-visible", *extra]) == 2
