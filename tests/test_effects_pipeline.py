"""classical+effects end to end: pipeline wiring, CLI decompose/edit, multi-layer path, make-dataset --effects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_effects import _ground, _object, egg_shadow_scene

from layerkit.cli import main
from layerkit.editing import move, recolor
from layerkit.errors import DataError
from layerkit.evaluation.effects_data import make_effects_dataset, parse_effects
from layerkit.ops.compositing import psnr
from layerkit.pipelines.decompose import Pipeline
from layerkit.types import Prompt


@pytest.fixture(scope="module")
def scene() -> dict:
    sc = egg_shadow_scene()
    ys, xs = np.nonzero(sc["alpha"] > 0.1)
    sc["box"] = [int(xs.min()) - 2, int(ys.min()) - 2, int(xs.max()) + 3, int(ys.max()) + 3]
    return sc


@pytest.fixture(scope="module")
def results(scene: dict) -> tuple:
    classical = Pipeline.from_config("classical")
    effects = Pipeline.from_config("classical+effects")
    prompt = Prompt(boxes=[scene["box"]])
    return classical(scene["image"], prompt), effects(scene["image"], prompt), effects


def test_the_pipeline_puts_the_shadow_in_the_layer(scene: dict, results: tuple) -> None:
    plain, res, pipe = results
    assert "effects" in res.timings and pipe.config()["effects"]["backend"] == "shadow_reflection"
    assert [e.kind for e in pipe.effects.last] == ["shadow"]
    region = (scene["shadow"] > 0.05) & (scene["alpha"] < 0.5)
    assert psnr(res.background, scene["ground"], region) > psnr(plain.background, scene["ground"], region) + 4.0
    assert res.alpha.sum() > plain.alpha.sum() * 1.05
    assert psnr(res.layers.composite(), res.image) > 45.0  # the stack still recomposes the input
    # the ROI covers the effect (the multi-layer path reuses results by ROI)
    x0, y0, x1, y1 = res.roi
    ys, xs = np.nonzero(res.alpha > 0)
    assert x0 <= xs.min() and y0 <= ys.min() and x1 > xs.max() and y1 > ys.max()


def test_the_stage_alone_equals_the_pipeline(results: tuple) -> None:
    plain, res, pipe = results  # what benchmarks/effects.py relies on
    a, f, b = pipe.effects(plain.image, plain.alpha, plain.foreground[..., :3], plain.background, plain.prompt)
    np.testing.assert_allclose(a, res.alpha, atol=1e-6)
    np.testing.assert_allclose(b, res.background, atol=1e-6)


def test_move_takes_the_shadow_along_and_recolour_spares_it(scene: dict, results: tuple) -> None:
    plain, res, _ = results
    gt = move(_gt_stack(scene), 1, 30, 0).composite()
    ours, theirs = move(res.layers, 1, 30, 0).composite(), move(plain.layers, 1, 30, 0).composite()
    assert psnr(ours, gt) > psnr(theirs, gt) + 2.0
    # recolour: the object's pixels change, the shadow's (black) do not
    out = recolor(res.layers, 1, hue=120)[1]
    shadow_px = (res.alpha > 0.05) & (plain.alpha == 0)  # what the effects stage added
    obj_px = scene["alpha"] > 0.99
    np.testing.assert_array_equal(out.rgba[shadow_px], res.layers[1].rgba[shadow_px])
    assert np.abs(out.rgb[obj_px] - res.layers[1].rgb[obj_px]).mean() > 0.1


def _gt_stack(scene: dict):
    from layerkit.types import Layer, LayerStack

    return LayerStack([Layer.from_rgb(scene["ground"], name="background"), Layer(scene["gt_layer"], name="object")])


def test_multilayer_path_carries_each_layers_effect(scene: dict, results: tuple) -> None:
    _, res, pipe = results
    stack = pipe.layers(scene["image"], [Prompt(boxes=[scene["box"]])])
    assert len(stack) == 2 and stack[1].alpha.sum() > scene["alpha"].sum() * 1.05
    assert psnr(stack.composite(), scene["image"]) > 45.0


def test_cli_decompose_then_move(tmp_path: Path, scene: dict, results: tuple) -> None:
    src = tmp_path / "photo.png"
    Image.fromarray((scene["image"] * 255 + 0.5).astype(np.uint8)).save(src)
    out, moved = tmp_path / "out.psd", tmp_path / "moved.png"
    box = ",".join(map(str, scene["box"]))
    assert main(["decompose", str(src), "--box", box, "--config", "classical+effects", "-o", str(out)]) == 0
    assert main(["edit", str(out), "--move", "1:30,0", "-o", str(moved)]) == 0
    got = np.asarray(Image.open(moved).convert("RGB"), np.float32) / 255.0
    assert got.shape == (160, 200, 3)
    # through the PSD: the shadow moved with the object (no dark ghost left where it was)
    gt = move(_gt_stack(scene), 1, 30, 0).composite()
    plain = move(results[0].layers, 1, 30, 0).composite()
    left = (scene["shadow"] > 0.1) & (np.roll(scene["shadow"], 30, axis=1) < 0.02) & (scene["alpha"] < 0.02)
    assert left.sum() > 30
    assert psnr(got, gt, left) > psnr(plain, gt, left) + 6.0


def egg_folders(tmp_path: Path) -> tuple[Path, Path]:
    """A foreground folder with one egg and a background folder with one floor."""
    fg, bg = tmp_path / "fg", tmp_path / "bg"
    fg.mkdir()
    bg.mkdir()
    rgb, alpha = _object(60, 50, 30, 25, 26, 18)
    Image.fromarray((np.dstack([rgb, alpha]) * 255).astype(np.uint8), "RGBA").save(fg / "red_egg_01.png")
    Image.fromarray((_ground(120, 160) * 255).astype(np.uint8)).save(bg / "floor.png")
    return fg, bg


def test_make_dataset_with_effects(tmp_path: Path) -> None:
    fg, bg = egg_folders(tmp_path)
    args = ["make-dataset", "--effects", "shadow,reflection", "--fg-dir", str(fg), "--bg-dir", str(bg), "--n", "4",
            "--seed", "2", "--quiet"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    for i in range(4):
        d, e = tmp_path / "a" / f"{i:04d}", tmp_path / "b" / f"{i:04d}"
        meta = json.loads((d / "box.json").read_text())
        assert meta["effect"] in ("shadow", "reflection") and len(meta["box_xyxy"]) == 4
        assert (d / "composite.png").read_bytes() == (e / "composite.png").read_bytes()  # deterministic
        comp = np.asarray(Image.open(d / "composite.png"), np.float64)
        fgl = np.asarray(Image.open(d / "gt_fg.png"), np.float64) / 255.0
        bgl = np.asarray(Image.open(d / "gt_bg.png"), np.float64)
        eff = np.asarray(Image.open(d / "gt_effect.png"), np.float64) / 255.0
        obj = np.asarray(Image.open(d / "gt_object.png"), np.float64)[..., 3] / 255.0
        rec = fgl[..., 3:] * fgl[..., :3] * 255.0 + (1 - fgl[..., 3:]) * bgl
        assert np.abs(rec - comp).max() <= 0.51  # exact GT up to the final 8-bit rounding
        assert (eff > 0).any() and fgl[..., 3].sum() > obj.sum()  # the layer holds the effect
    # the effect data are scored by the composite evaluator as they are
    from layerkit.evaluation.composites import find_samples

    assert len(find_samples(tmp_path / "a")) == 4


def test_make_dataset_effects_bad_inputs(tmp_path: Path) -> None:
    assert parse_effects("Shadow, reflection,shadow") == ("shadow", "reflection")
    with pytest.raises(DataError, match="--effects"):
        parse_effects("smoke")
    with pytest.raises(DataError, match="--effects"):
        parse_effects(" , ")
    with pytest.raises(DataError, match="does not exist"):
        make_effects_dataset(tmp_path / "nope", tmp_path / "nope", tmp_path / "out")
    with pytest.raises(DataError, match="--cover"):
        make_effects_dataset(tmp_path, tmp_path, tmp_path / "out", cover=(0.5, 0.9))
    assert main(["make-dataset", "--effects", "smoke", "--fg-dir", str(tmp_path), "--bg-dir", str(tmp_path),
                 "-o", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_benchmark_runs_with_cache_and_oracle(tmp_path: Path) -> None:
    """benchmarks/effects.py on 2 made samples: the oracle bounds classical, the cache gives the same figures."""
    import importlib.util

    fg, bg = egg_folders(tmp_path)
    make_effects_dataset(fg, bg, tmp_path / "fx", effects=("shadow",), n=2, seed=3)
    spec = importlib.util.spec_from_file_location("bench_effects", Path(__file__).parents[1] / "benchmarks" / "effects.py")
    bench = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    args = ["--effects-data", str(tmp_path / "fx"), "--cache", str(tmp_path / "cache")]
    assert bench.main([*args, "-o", str(tmp_path / "a.json")]) == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    assert bench.main([*args, "-o", str(tmp_path / "b.json")]) == 0  # from the cache
    a, b = (json.loads((tmp_path / n).read_text())["summary"] for n in ("a.json", "b.json"))
    assert a["fx_n"] == 2 and a["fx_bg_psnr_effect"] == b["fx_bg_psnr_effect"]
    # the time ratio compares seconds of one run only: none from the cache (another run, another load)
    assert a["time_ratio_samples"] == 2 and a["time_ratio"] > 0
    assert b["time_ratio"] is None and "--cache" in b["time_ratio_note"]
    region = a["fx_bg_psnr_effect"]
    assert region["oracle"] > region["classical"] + 6.0  # the GT shadow divided out of classical's background
