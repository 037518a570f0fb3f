"""LASAGNA generation modes (fg / bg / all) on tiny random diffusers models saved and loaded back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_effects import _ground, _object
from test_stages_pretrained_factories import tiny_model

from layerkit.cli import main
from layerkit.errors import ConfigError, MissingModelError, PromptError
from layerkit.modules.generator.diffusers_inpaint import DiffusersLayerGenerator
from layerkit.modules.generator.layer_solve import layer_over_known_background, min_alpha_over, pad_to_multiple
from layerkit.pipelines.decompose import Pipeline
from layerkit.types import Prompt


@pytest.fixture(scope="module")
def overrides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {"pipeline.device": "cpu", "generator.model": str(tiny_model("sdxl", tmp_path_factory)), "generator.steps": 2,
            "grounder.model": str(tiny_model("grounding_dino", tmp_path_factory)), "grounder.box_threshold": 0.0,
            "grounder.text_threshold": 0.0}


@pytest.fixture(scope="module")
def pipe(overrides: dict[str, Any]) -> Pipeline:
    return Pipeline.from_config("lasagna", overrides)


def test_inpaint_keeps_the_outside_exact_and_is_seeded(overrides: dict[str, Any]) -> None:
    gen = DiffusersLayerGenerator(overrides["generator.model"], steps=2).to("cpu")
    img = np.random.default_rng(0).random((32, 48, 3)).astype(np.float32)
    m = np.zeros((32, 48), bool)
    m[8:24, 16:40] = True
    out = gen.inpaint("a red fox", img, m, seed=0)
    np.testing.assert_array_equal(out[~m], img[~m])
    assert np.abs(out[m] - img[m]).mean() > 0.01
    np.testing.assert_array_equal(out, gen.inpaint("a red fox", img, m, seed=0))
    with pytest.raises(ConfigError, match="multiple of 8"):
        gen.inpaint("a red fox", img[:30], m[:30])
    with pytest.raises(ConfigError, match="empty"):
        gen.inpaint("a red fox", img, np.zeros_like(m))
    with pytest.raises(ConfigError, match="prompt is empty"):
        gen.inpaint("  ", img, m)


def test_an_inpainting_checkpoint_loads_and_generates(tmp_path: Path, overrides: dict[str, Any]) -> None:
    base = DiffusersLayerGenerator(overrides["generator.model"], steps=2).to("cpu")
    base.inpainting.save_pretrained(tmp_path / "inpaint")  # a StableDiffusionXLInpaintPipeline folder
    gen = DiffusersLayerGenerator(str(tmp_path / "inpaint"), steps=2).to("cpu")
    assert "Inpaint" in type(gen.loaded).__name__
    img = gen("a beach", height=32, width=32, seed=0)
    assert img.shape == (32, 32, 3) and np.isfinite(img).all()


def test_missing_weights_is_one_line() -> None:
    (msg,) = DiffusersLayerGenerator("/nonexistent/sdxl-inpaint").missing_weights()
    assert "generator.model" in msg and "\n" not in msg
    from layerkit.registry import build

    with pytest.raises(ConfigError, match="strength"):
        build("generator", "diffusers_layers", {"strength": 0.0})


def test_known_background_solve() -> None:
    h, w = 40, 50
    bg = _ground(h, w)
    rgb, alpha = _object(h, w, 20, 25, 10, 8)
    shadow = np.zeros((h, w), np.float32)
    shadow[28:34, 10:40] = 0.5
    image = (alpha[..., None] * rgb + (1 - alpha[..., None]) * bg * (1 - shadow[..., None])).astype(np.float32)
    region = np.ones((h, w), bool)
    a, f, comp = layer_over_known_background(image, bg, alpha, region)
    assert np.abs(comp - image).max() < 1e-5  # recomposes the picture, B untouched
    np.testing.assert_allclose(a[30, 20], 0.5, atol=1e-3)  # the painted shadow joined the layer
    assert a[5, 45] == 0.0 and (a >= alpha - 1e-6).all()
    assert min_alpha_over(bg, bg).max() == 0.0
    assert pad_to_multiple(bg).shape == (40, 56, 3)


def test_fg_mode_keeps_the_background_pixel_exact(pipe: Pipeline) -> None:
    bg = _ground(60, 76)  # not multiples of 8: padded for the model, cropped back
    res = pipe.generate("a red fox", mode="fg", background=bg, box=[20, 10, 50, 45], seed=0)
    assert res.names == ["background", "a red fox"] and res.size == (60, 76)
    np.testing.assert_array_equal(res[0].rgb, np.clip(bg, 0, 1))
    a = res[1].alpha
    outside = np.ones_like(a, bool)
    outside[5:50, 15:55] = False  # the box grown by 15 %
    assert not a[outside].any() and a.sum() > 0


def test_bg_mode_keeps_the_foreground_pixel_exact(pipe: Pipeline) -> None:
    rgb, alpha = _object(48, 56, 24, 28, 12, 10)
    layer = np.dstack([rgb, alpha]).astype(np.float32)
    res = pipe.generate("a rainy street at night", mode="bg", layer=layer, seed=0)
    np.testing.assert_array_equal(res[1].rgba, layer)
    assert res[0].alpha.min() == 1.0 and res.composite().shape == (48, 56, 3)


def test_all_mode_is_text_to_layers_with_the_effects_stage(pipe: Pipeline) -> None:
    from layerkit.pipelines.generate import generate_result

    res = generate_result(pipe, "a dog on the beach", "a dog", height=32, width=48, seed=0, mode="all")
    assert res.layers.names == ["background", "a dog"] and "effects" in res.timings


def test_mode_errors(pipe: Pipeline, overrides: dict[str, Any]) -> None:
    with pytest.raises(PromptError, match="--background"):
        pipe.generate("a fox", mode="fg")
    with pytest.raises(PromptError, match="--foreground"):
        pipe.generate("a street", mode="bg")
    with pytest.raises(ConfigError, match="unknown generation mode"):
        pipe.generate("a street", mode="xyz")
    with pytest.raises(PromptError, match="fully transparent"):
        pipe.generate("a street", mode="bg", layer=np.zeros((16, 16, 4), np.float32))
    plain = Pipeline.from_config("layeringdiff", {**overrides, "generator.backend": "diffusers"}, check_weights=False)
    with pytest.raises(ConfigError, match="can inpaint"):
        plain.generate("a street", mode="bg", layer=np.ones((16, 16, 4), np.float32))
    bad = Pipeline.from_config("lasagna", {**overrides, "generator.model": "/nonexistent/model"}, check_weights=False)
    with pytest.raises(MissingModelError, match="generator.model"):
        bad.generate("a fox", mode="fg", background=_ground(32, 32), box=[4, 4, 20, 20])


def test_cli_modes(tmp_path: Path, overrides: dict[str, Any]) -> None:
    street = tmp_path / "street.png"
    Image.fromarray((_ground(48, 64) * 255).astype(np.uint8)).save(street)
    sets = ["--set", *(f"{k}={v}" for k, v in overrides.items())]
    out = tmp_path / "fox.psd"
    assert main(["generate", "a red fox", "--mode", "fg", "--background", str(street), "--box", "10,8,40,40",
                 "-o", str(out), "--config", "lasagna", "--quiet", *sets]) == 0
    assert out.is_file()
    assert main(["generate", "a street", "--mode", "bg", "-o", str(tmp_path / "x.psd"), "--config", "lasagna", *sets]) == 2
    assert main(["generate", "a fox", "--mode", "fg", "--background", str(street), "-o", str(tmp_path / "y.psd"),
                 "--config", "lasagna", *sets]) == 2
    assert not (tmp_path / "x.psd").exists() and not (tmp_path / "y.psd").exists()


def test_fg_mode_needs_no_grounder_weights_and_a_text_prompt_names_them(overrides: dict[str, Any]) -> None:
    no_dino = {**overrides, "grounder.model": "/nonexistent/grounding-dino"}
    pipe = Pipeline.from_config("lasagna", no_dino)  # only the generator is needed for fg / bg
    assert "grounder" not in pipe.eager_roles()
    res = pipe.generate("a fox", mode="fg", background=_ground(32, 32), box=[4, 4, 20, 20])
    assert res.names == ["background", "a fox"] and res.size == (32, 32)
    with pytest.raises(MissingModelError, match="grounder.model"):  # checked before any work on the prompt
        pipe(_ground(32, 32), Prompt(text="a fox"))
    # a config whose trimapper asks the grounder on every call still checks it at once
    ma = Pipeline.from_config("matte_anything", check_weights=False)
    assert "grounder" in ma.eager_roles()


def test_cli_checks_the_grounder_only_for_a_text_prompt(tmp_path: Path, capsys) -> None:
    img = tmp_path / "p.png"
    Image.fromarray((_ground(48, 48) * 255).astype(np.uint8)).save(img)
    sets = ["--config", "lasagna", "--set", "generator.model=/nonexistent/sdxl", "grounder.model=/nonexistent/dino"]
    assert main(["decompose", str(img), "--box", "8,8,40,40", *sets, "-o", str(tmp_path / "box"), "--quiet"]) == 0
    capsys.readouterr()
    for cmd in (["decompose", str(img), "--text", "a fox"], ["layers", str(img), "--text", "a fox"]):
        out = tmp_path / "out"
        assert main([*cmd, *sets, "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "grounder.model" in err[0] and "generator" not in err[0], err  # before any work
        assert not out.exists()
