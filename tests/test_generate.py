"""Text → layers: foreground phrase glue, the diffusers generator, the LayeringDiff pipeline and CLI.

The whole layeringdiff config runs on CPU with tiny saved models (SDXL-style pipeline, Grounding
DINO, transformers SAM, ViTMatte) pointed at by config overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_composite
from test_stages_pretrained_factories import tiny_model

from layerkit.errors import ConfigError, PromptError
from layerkit.modules.grounder.phrases import (
    default_foreground,
    foreground_phrase,
    grounding_caption,
    indices_of_phrase,
    phrase_from_indices,
    split_queries,
    words,
)
from layerkit.types import Prompt

TEXT = "A bird flying at sunset over the mountains"


@pytest.fixture(scope="module")
def tiny_overrides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    def d(kind: str) -> str:
        return str(tiny_model(kind, tmp_path_factory))

    return {"pipeline.device": "cpu", "generator.model": d("sdxl"), "generator.steps": 2,
            "grounder.model": d("grounding_dino"), "grounder.box_threshold": 0.0, "grounder.text_threshold": 0.0,
            "segmenter.model": d("sam_hf"), "matter.model": d("vitmatte")}


@pytest.fixture(scope="module")
def pipe(tiny_overrides: dict[str, Any]) -> Any:
    from layerkit.pipelines.decompose import Pipeline

    return Pipeline.from_config("layeringdiff", tiny_overrides)


# ---------------------------------------------------------------------------------------------- phrases
def test_words_and_indices_round_trip() -> None:
    assert words(TEXT + ".") == ["A", "bird", "flying", "at", "sunset", "over", "the", "mountains"]
    assert words("a dog's sun-lit toy, _x_") == ["a", "dog's", "sun-lit", "toy", "x"]
    assert phrase_from_indices(TEXT, [2, 0, 1]) == "A bird flying"
    assert phrase_from_indices(TEXT, (7,)) == "mountains"
    assert indices_of_phrase(TEXT, "bird FLYING") == [1, 2]
    assert indices_of_phrase("the cat and the dog", "the dog") == [3, 4]
    assert phrase_from_indices(TEXT, indices_of_phrase(TEXT, "the mountains")) == "the mountains"


def test_foreground_phrase_forms() -> None:
    assert foreground_phrase(TEXT) == "A bird flying" == default_foreground(TEXT)
    assert foreground_phrase(TEXT, "  A bird,  flying ") == "A bird flying"
    assert foreground_phrase(TEXT, [0, 1]) == "A bird"
    assert default_foreground("A cup of coffee on a wooden table") == "A cup of coffee"
    assert default_foreground("On a table, a red apple next to a knife") == "a red apple"
    assert default_foreground("In the rain. Under a bridge") == "In the rain"
    for bad, match in (([], "empty"), ([1, 1], "repeat"), ([8], "outside the prompt's 8 words")):
        with pytest.raises(PromptError, match=match):
            foreground_phrase(TEXT, bad)
    with pytest.raises(PromptError, match="does not occur"):
        indices_of_phrase(TEXT, "a cat")
    with pytest.raises(PromptError, match="has no word"):
        foreground_phrase(TEXT, " ,. ")


def test_grounding_caption_and_queries() -> None:
    assert grounding_caption("The Bird , a lens") == "the bird. a lens."
    assert grounding_caption("glass. lens. water.") == "glass. lens. water."
    assert split_queries("glass. lens, water;smoke") == ["glass", "lens", "water", "smoke"]
    with pytest.raises(PromptError, match="no phrase"):
        split_queries(" . , ")


# ---------------------------------------------------------------------------------------------- generator
def test_diffusers_generator_is_seeded_and_checks_sizes(tiny_overrides: dict[str, Any]) -> None:
    from layerkit.modules.generator.diffusers_t2i import DiffusersGenerator

    gen = DiffusersGenerator(tiny_overrides["generator.model"], steps=2).to("cpu")
    assert gen.missing_weights() == [] and gen._loaded is None
    a = gen(TEXT, height=32, width=48, seed=0)
    assert a.shape == (32, 48, 3) and a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, gen(TEXT, height=32, width=48, seed=0))
    assert not np.array_equal(a, gen(TEXT, height=32, width=48, seed=1))
    with pytest.raises(ConfigError, match="multiple of 8"):
        gen(TEXT, height=30, width=48)
    (msg,) = DiffusersGenerator("stabilityai/stable-diffusion-xl-base-1.0").missing_weights()
    assert "generator.model=DIR" in msg


# ---------------------------------------------------------------------------------------------- pipeline
def test_text_prompt_through_the_layeringdiff_stages(pipe: Any) -> None:
    c = make_composite()
    res = pipe(c["image"], Prompt(text="a red disc"))
    det = pipe.grounder(c["image"], "a red disc")
    np.testing.assert_allclose(res.prompt.boxes[-1], det.boxes[0], atol=1e-4)  # the best box was used
    assert res.layers.names == ["background", "a red disc"]
    assert (res.alpha[res.trimap == 1.0] == 1.0).all() and (res.alpha[res.trimap == 0.0] == 0.0).all()
    # exact recomposition but where F had to clip under α ≥ 0.5 (docs/architecture.md, consistency)
    bad = np.abs(res.layers.composite() - c["image"]).max(axis=2) > 1e-4
    assert bad.mean() <= 1e-3 and (res.alpha[bad] >= 0.5).all()


def test_generate_layers_from_phrase_or_indices(pipe: Any) -> None:
    from layerkit.pipelines.generate import generate_result

    stack = pipe.generate(TEXT, "A bird flying", height=32, width=48, seed=0, name="bird")
    assert stack.names == ["background", "bird"] and stack.size == (32, 48)
    res = generate_result(pipe, TEXT, [0, 1, 2], seed=0, height=32, width=48)
    np.testing.assert_array_equal(res.foreground, stack[1].rgba)  # same seed, same phrase → same layers
    assert list(res.timings)[0] == "generate" and res.prompt.text == "A bird flying"
    assert res.layers.names == ["background", "A bird flying"] and res.image.shape == (32, 48, 3)
    known = (res.alpha == 0.0) | (res.alpha == 1.0)
    assert known.any() and np.abs(res.layers.composite() - res.image)[known].max() < 1e-4


def test_generate_needs_a_generator() -> None:
    from layerkit.pipelines.decompose import Pipeline

    with pytest.raises(ConfigError, match="has no generator"):
        Pipeline.from_config("classical").generate(TEXT)


# ---------------------------------------------------------------------------------------------- CLI
def _write_config(tmp_path: Path, overrides: dict[str, Any]) -> str:
    from layerkit.config import compose, dump_config

    path = tmp_path / "tiny_layeringdiff.yaml"
    dump_config(compose("layeringdiff", overrides).data, path)
    return str(path)


def test_cli_generate_writes_a_psd(tmp_path: Path, tiny_overrides: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    from layerkit.cli import main
    from layerkit.types import LayerStack

    cfg = _write_config(tmp_path, tiny_overrides)
    out = tmp_path / "bird.psd"
    rc = main(["generate", TEXT, "--fg", "A bird flying", "-o", str(out), "--config", cfg,
               "--height", "32", "--width", "48", "--seed", "3"])
    assert rc == 0 and out.is_file()
    assert capsys.readouterr().out.strip() == str(out)
    back = LayerStack.load(out)
    assert back.names == ["background", "A bird flying"] and back.size == (32, 48)
    rc = main(["generate", TEXT, "--fg-words", "1,9", "-o", str(tmp_path / "x"), "--config", cfg, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("layerkit: error: foreground word index 9") and err.count("\n") == 1


def test_cli_reports_every_missing_model_in_one_line(image_file: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from layerkit.cli import main

    rc = main(["decompose", image_file, "--text", "the white horse", "--config", "layeringdiff", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    # decompose does not need the generator: only the three models it runs are named
    assert err.startswith("layerkit: error: 3 model(s) not available offline") and err.count("\n") == 1
    for key in ("grounder.model=DIR", "segmenter.model=DIR", "matter.model=DIR"):
        assert key in err
    assert "generator" not in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    rc = main(["generate", TEXT, "-o", str(tmp_path / "gen"), "--set", "segmenter.backend=sam"])
    err = capsys.readouterr().err
    assert rc == 2 and "segmenter.checkpoint=sam_vit_h_4b8939.pth: file not found" in err
    assert "generator.model=DIR" in err and err.startswith("layerkit: error: 4 model(s)")
