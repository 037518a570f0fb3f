"""The stage contract: every registered backend is a Stage of its role, records the arguments that
rebuild it (save_config → from_config round-trips each shipped backend exactly, tiny learned ones
included), segmenters embed an image once, and pipeline.seed reaches every stochastic stage."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_composite
from test_stages_pretrained_factories import tiny_model

from layerkit import Pipeline
from layerkit.config import dump_config, load_config
from layerkit.modules import base
from layerkit.registry import REGISTRY, build, resolve
from layerkit.types import Prompt

ROLE_BASES = {"generator": base.Generator, "grounder": base.Grounder, "segmenter": base.Segmenter,
              "trimapper": base.Trimapper, "matter": base.Matter, "decomposer": base.Decomposer,
              "refiner": base.Refiner, "multilayer": base.MultiLayer, "proposer": base.Proposer,
              "orderer": base.Orderer, "effects": base.Effects, "completion": base.Completer}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    return lambda kind: tiny_model(kind, tmp_path_factory)


def _params(role: str, backend: str, tiny: Callable[[str], Path], tmp: Path) -> dict[str, Any]:
    """Non-default arguments for each backend (tiny saved models for the learned ones)."""
    table: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
        ("generator", "diffusers"): lambda: {"model": str(tiny("sdxl")), "steps": 2, "guidance_scale": 1.5},
        ("grounder", "grounding_dino"): lambda: {"model": str(tiny("grounding_dino")), "box_threshold": 0.2},
        ("grounder", "owlv2"): lambda: {"model": str(tiny("owlv2"))},
        ("segmenter", "grabcut"): lambda: {"iterations": 3, "inits": ("histogram", "center"), "max_side": 200},
        ("segmenter", "sam"): lambda: {"checkpoint": str(tiny("sam") / "sam_tiny.pth"), "model_type": "vit_b",
                                       "multimask": "always"},
        ("segmenter", "sam_hf"): lambda: {"model": str(tiny("sam_hf")), "multimask": "never"},
        ("trimapper", "morphology"): lambda: {"band": 7, "see_through": False},
        ("trimapper", "transparency"): lambda: {"band_ratio": 0.05, "transparency_prompt": "glass"},
        ("matter", "closed_form"): lambda: {"radius": 2, "epsilon": 1e-6},
        ("matter", "vitmatte"): lambda: {"model": str(tiny("vitmatte"))},
        ("decomposer", "classical"): lambda: {"inpaint_method": "telea", "hole_dilate": 2},
        ("decomposer", "fbdd"): lambda: {"model": str(tmp / "fbdd"), "steps": 3},
        ("refiner", "wavelet"): lambda: {"levels": 3},
        ("refiner", "hfa"): lambda: {"checkpoint": str(tmp / "hfa.pt")},
        ("multilayer", "qwen_layered"): lambda: {"model": str(tmp / "qwen"), "layers": 3, "steps": 2},
        ("proposer", "saliency"): lambda: {"min_contrast": 15.0, "n_segments": 100},
        ("proposer", "grounded"): lambda: {"phrases": "cat . dog .", "limit": 3},
        ("orderer", "occlusion"): lambda: {"tie": 0.1},
        ("orderer", "cues"): lambda: {"weights": [0.5] * 15},
        ("generator", "diffusers_layers"): lambda: {"model": str(tiny("sdxl")), "steps": 2, "strength": 0.9},
        ("effects", "shadow_reflection"): lambda: {"effects": ["shadow"], "reach": 1.2},
        ("decomposer", "reflayer"): lambda: {"model": str(tmp / "reflayer"), "steps": 3},
        ("completion", "exemplar"): lambda: {"fill": "harmonic", "depth": 2.0},
    }
    return table[(role, backend)]()


ALL = [(role, name) for role, entries in REGISTRY.items() for name in entries]


@pytest.mark.parametrize("role, backend", ALL, ids=[f"{r}-{b}" for r, b in ALL])
def test_every_backend_is_a_stage_that_round_trips(role: str, backend: str, tiny: Callable[[str], Path],
                                                   tmp_path: Path) -> None:
    cls = resolve(role, backend)
    assert issubclass(cls, base.Stage) and issubclass(cls, ROLE_BASES[role]), cls
    params = _params(role, backend, tiny, tmp_path)
    stage = build(role, backend, params)
    cfg = stage.config()
    assert cfg["backend"] == backend
    for key, value in params.items():  # what was given is recorded …
        assert cfg[key] == (list(value) if isinstance(value, tuple) else value), key
    # … with every other constructor argument at its default, so the config is complete
    signature = {n for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"}
    assert set(cfg) - {"backend"} == signature
    path = tmp_path / "stage.yaml"
    dump_config({role: cfg}, path)
    again = build(role, backend, {k: v for k, v in load_config(_full(path, role)).get(role).items() if k != "backend"})
    assert again.config() == cfg


def _full(path: Path, role: str) -> Path:
    """A whole pipeline config around one stage section (the required roles from classical)."""
    import yaml

    section = yaml.safe_load(path.read_text())
    classical = {r: {"backend": b} for r, b in (("segmenter", "grabcut"), ("trimapper", "morphology"),
                                                 ("matter", "closed_form"), ("decomposer", "classical"))}
    out = path.with_name("pipe.yaml")
    out.write_text(yaml.safe_dump({**classical, **section}))
    return out


def test_learned_configs_round_trip_through_save_config(tiny: Callable[[str], Path], tmp_path: Path) -> None:
    overrides = {"generator.model": str(tiny("sdxl")), "grounder.model": str(tiny("grounding_dino")),
                 "segmenter.model": str(tiny("sam_hf")), "matter.model": str(tiny("vitmatte")),
                 "generator.steps": 2}
    pipe = Pipeline.from_config("layeringdiff", overrides, check_weights=False)
    pipe.check_weights()  # every model of the decomposition is on disk (raises otherwise)
    path = tmp_path / "ld.yaml"
    pipe.save_config(path)
    assert Pipeline.from_config(path, check_weights=False).config() == pipe.config()


def test_pickled_stage_keeps_its_arguments() -> None:
    import pickle

    from layerkit.modules.segmenter.grabcut import GrabCutSegmenter

    seg = GrabCutSegmenter(iterations=2)
    assert pickle.loads(pickle.dumps(seg)).config() == seg.config()


def test_an_unserialisable_argument_is_a_clear_error() -> None:
    from layerkit.errors import ConfigError

    class Odd(base.Matter):
        def __init__(self, thing: object = None) -> None:
            self.thing = thing

        def __call__(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
            return trimap

    with pytest.raises(ConfigError, match="matter.thing of Odd is a object"):
        Odd(thing=object()).config()


# ---------------------------------------------------------------------------------------------- embed once
def test_sam_hf_embeds_an_image_once_for_five_objects(tiny: Callable[[str], Path]) -> None:
    """SAM-HF tiny, 5 objects: one image embedding serves every prompt of a multi-layer run."""
    img = np.full((96, 560, 3), 0.2, np.float32)
    boxes = []
    for k in range(5):  # apart by more than the region margin, so no peel changes another's region
        x0 = 8 + 110 * k
        img[30:60, x0:x0 + 20] = (0.1 + 0.18 * k, 0.9 - 0.15 * k, 0.5)
        boxes.append([x0 - 2, 28, x0 + 22, 62])
    pipe = Pipeline.from_config("classical", {"segmenter.backend": "sam_hf", "segmenter.model": str(tiny("sam_hf")),
                                              "segmenter.multimask": "never"})
    seg = pipe.segmenter
    stack = pipe.layers(img, [Prompt(boxes=[b]) for b in boxes], order="auto")
    assert len(stack) >= 2
    assert seg.embeddings_computed == 1
    pipe(img, Prompt(boxes=[boxes[0]]))  # the same image again: still one embedding
    assert seg.embeddings_computed == 1
    pipe(img[::-1].copy(), Prompt(boxes=[boxes[0]]))  # another image: a new one
    assert seg.embeddings_computed == 2


def test_predict_without_set_image_says_so() -> None:
    from layerkit.modules.segmenter.grabcut import GrabCutSegmenter

    with pytest.raises(RuntimeError, match="before set_image"):
        GrabCutSegmenter().predict(Prompt(boxes=[[0, 0, 4, 4]]))


# ---------------------------------------------------------------------------------------------- seeds
def test_pipeline_seed_reaches_every_stochastic_stage() -> None:
    c = make_composite()
    prompt = Prompt(boxes=[c["box"]])
    pipe = Pipeline.from_config("classical", {"decomposer.inpaint_method": "exemplar", "pipeline.seed": 3})
    a = pipe(c["image"], prompt)
    assert all(s.seed == 3 for s in pipe.components.values() if s is not None)
    b = pipe(c["image"], prompt)
    np.testing.assert_array_equal(a.background, b.background)  # same seed → identical
    np.testing.assert_array_equal(a.alpha, b.alpha)
    other = Pipeline.from_config("classical", {"decomposer.inpaint_method": "exemplar", "pipeline.seed": 4})
    d = other(c["image"], prompt)
    hidden = a.alpha >= 0.5
    assert np.abs(d.background[hidden] - a.background[hidden]).max() > 1e-3  # PatchMatch used the seed
    assert all(s.seed == 4 for s in other.components.values() if s is not None)


def test_grabcut_draws_from_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """GrabCut's k-means initialisation draws from OpenCV's RNG, seeded with the stage's seed."""
    import cv2

    from layerkit.modules.segmenter.grabcut import GrabCutSegmenter

    seeds: list[int] = []
    real = cv2.setRNGSeed
    monkeypatch.setattr(cv2, "setRNGSeed", lambda s: (seeds.append(s), real(s)))
    pipe = Pipeline.from_config("classical", {"pipeline.seed": 11})
    c = make_composite()
    pipe(c["image"], Prompt(boxes=[c["box"]]))
    assert isinstance(pipe.segmenter, GrabCutSegmenter) and seeds and set(seeds) == {11}
