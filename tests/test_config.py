"""Config → pipeline: one compose/validate path, order-independent overrides, errors that name the
key, the file and the valid choices, the registry, swapping, and exact save/load round trips."""

from __future__ import annotations

import warnings

import pytest

from layerkit import Pipeline
from layerkit.config import available_configs, compose, load_config, parse_override
from layerkit.errors import ConfigError
from layerkit.modules.matter.closed_form import ClosedFormMatter
from layerkit.registry import REGISTRY, build, resolve


def test_classical_builds_with_components():
    pipe = Pipeline.from_config("classical")
    comps = pipe.components
    assert list(comps) == ["generator", "grounder", "segmenter", "trimapper", "matter", "decomposer", "refiner",
                           "multilayer", "proposer", "orderer", "effects", "completion"]
    assert comps["multilayer"] is None
    assert comps["generator"] is None and comps["grounder"] is None
    assert type(comps["matter"]).__name__ == "ClosedFormMatter"
    assert type(comps["proposer"]).__name__ == "SaliencyProposer"
    assert type(comps["orderer"]).__name__ == "CueOrderer"
    assert "classical" in available_configs()


def test_overrides_all_forms():
    a = Pipeline.from_config("classical", ["trimapper.band=12"])
    b = Pipeline.from_config("classical", {"trimapper.band": 12})
    c = Pipeline.from_config("classical", trimapper__band=12)
    assert a.trimapper.band == b.trimapper.band == c.trimapper.band == 12
    assert parse_override("x.y=[1, 2]") == ("x.y", [1, 2])


@pytest.mark.parametrize("items", [
    ["trimapper.band_ratio=0.05", "trimapper.backend=transparency"],
    ["trimapper.backend=transparency", "trimapper.band_ratio=0.05"],
])
def test_overrides_are_order_independent(items):
    """Switching a backend in the same call keeps the keys given for that stage in that call."""
    pipe = Pipeline.from_config("classical", items)
    assert type(pipe.trimapper).__name__ == "TransparencyTrimapper"
    assert pipe.trimapper.band_ratio == 0.05
    assert pipe.config()["trimapper"]["band_ratio"] == 0.05


@pytest.mark.parametrize("items", [
    ["refiner.checkpoint=x.pt", "refiner.backend=hfa"],
    ["refiner.backend=hfa", "refiner.checkpoint=x.pt"],
])
def test_checkpoint_before_backend_is_kept(items):
    pipe = Pipeline.from_config("classical", items, check_weights=False)
    assert pipe.refiner.checkpoint == "x.pt"


def test_backend_switch_rejects_keys_the_new_backend_does_not_take():
    with pytest.raises(ConfigError, match=r"override: unknown key 'segmenter.iterations' for segmenter backend "
                                          r"'sam_hf'; valid keys: backend, dtype, model, multimask, refine_mask"):
        Pipeline.from_config("classical", ["segmenter.iterations=3", "segmenter.backend=sam_hf"])
    with pytest.raises(ConfigError, match=r"unknown key 'refiner.levels' for refiner backend 'hfa'"):
        Pipeline.from_config("classical", ["refiner.levels=2", "refiner.backend=hfa"], check_weights=False)


def test_backend_change_in_a_later_layer_drops_earlier_keys():
    composed = compose("classical", {"refiner.backend": "none"})
    assert composed.data["refiner"] == {"backend": "none"}
    assert Pipeline.from_config("classical", {"refiner.backend": "none"}).refiner is None


@pytest.mark.parametrize("overrides, match", [
    ({"matter.bandwidth": 3}, r"override: unknown key 'matter.bandwidth' for matter backend 'closed_form'; valid keys: backend, cg_tolerance"),
    ({"matter.backend": "magic"}, r"unknown matter backend 'magic'; valid names: closed_form, vitmatte"),
    ({"pipeline.speed": 1}, r"unknown key 'pipeline.speed'; valid keys: coarse_side, consistent"),
    ({"colour.backend": "x"}, r"unknown config section 'colour'"),
    ({"trimapper.band": "wide"}, r"trimapper.band must be of type int \(or null\), got 'wide'"),
    ({"segmenter.backend": "none"}, r"segmenter is required"),
    ({"pipeline.consistent": "yes please"}, r"pipeline.consistent must be true or false"),
    ({"segmenter.inits": 3}, r"segmenter.inits"),
    ({"orderer.weights": ["a", "b"]}, r"orderer.weights must be a list of float, got \['a', 'b'\]"),  # not "weights\[0\]"
])
def test_config_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        Pipeline.from_config("classical", overrides)


def test_errors_name_the_file(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("segmenter: {backend: grabcut, iterashuns: 3}\ntrimapper: morphology\nmatter: closed_form\n"
                   "decomposer: classical\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: unknown key 'segmenter.iterashuns'.*valid keys: backend, "
                                          r"background_weight"):
        Pipeline.from_config(cfg)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("pipeline: 3\nsegmenter: grabcut\ntrimapper: morphology\nmatter: closed_form\ndecomposer: classical\n")
    with pytest.raises(ConfigError, match=r"scalar.yaml: section 'pipeline' must be a mapping"):
        Pipeline.from_config(scalar)
    with pytest.raises(ConfigError, match="is a folder"):
        Pipeline.from_config(tmp_path)


def test_unknown_config_lists_shipped():
    with pytest.raises(ConfigError, match="shipped pipeline configs: .*classical"):
        load_config("nope")


def test_dotted_path_backend():
    stage = build("matter", "layerkit.modules.matter.closed_form:ClosedFormMatter", {"radius": 2})
    assert isinstance(stage, ClosedFormMatter) and stage.radius == 2
    with pytest.raises(ConfigError, match="cannot import"):
        resolve("matter", "no_such_pkg.mod:Cls")


def test_registry_is_flat_and_complete():
    for role, entries in REGISTRY.items():
        for name, target in entries.items():
            assert ":" in target and target.startswith("layerkit."), (role, name)


def test_hand_built_stage_keeps_its_arguments(tmp_path):
    """The issue's case: a stage assigned by hand round-trips with its arguments."""
    pipe = Pipeline.from_config("classical", {"trimapper.band": 9})
    pipe.matter = ClosedFormMatter(radius=2, epsilon=1e-6)
    path = tmp_path / "c.yaml"
    pipe.save_config(path)
    again = Pipeline.from_config(path)
    assert again.config()["matter"] == {"backend": "closed_form", **ClosedFormMatter(radius=2, epsilon=1e-6).init_args}
    assert again.matter.radius == 2 and again.matter.epsilon == 1e-6
    assert again.trimapper.band == 9
    assert again.config() == pipe.config()


def test_from_config_accepts_overlay_specs():
    from layerkit.errors import MissingModelError

    pipe = Pipeline.from_config("classical+hfa", check_weights=False)
    assert type(pipe.refiner).__name__ == "HFARefiner"
    assert pipe.settings.name == "classical+hfa"
    with pytest.raises(MissingModelError, match="refiner"):
        Pipeline.from_config("classical+hfa")
    with pytest.raises(ConfigError, match="unknown overlay config 'nope'"):
        Pipeline.from_config("classical+nope")
    # a user override that names the overlay's section wins over the overlay
    assert type(Pipeline.from_config("classical+hfa", {"refiner.backend": "wavelet"}).refiner).__name__ == "WaveletRefiner"
    peel = Pipeline.from_config("classical+peel")  # multi-layer peeling: no `core` initialisation
    assert peel.segmenter.inits == ("histogram", "center") and peel.segmenter.fill_holes == 0.7


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("segmenter: [unclosed")
    with pytest.raises(ConfigError, match="not valid"):
        Pipeline.from_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Pipeline.from_config(tmp_path / "missing.yaml")


def test_old_section_names_still_work_with_a_warning(monkeypatch):
    from layerkit import registry

    monkeypatch.setitem(registry.ROLE_ALIASES, "mattes", "matter")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = Pipeline.from_config("classical", {"mattes.radius": 2})
    assert pipe.matter.radius == 2
    assert any("now called 'matter'" in str(w.message) for w in caught)


def test_old_module_paths_of_saved_configs_still_resolve():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cls = resolve("matter", "layerkit.modules.matting.closed_form:ClosedFormMatter")
    assert cls is ClosedFormMatter
    assert any("layerkit.modules.matter.closed_form:ClosedFormMatter" in str(w.message) for w in caught)


@pytest.mark.parametrize("name", ["lasagna", "reflayer"])
def test_weight_free_stages_of_other_pipelines_are_classicals(name):
    """`lasagna` and `reflayer` decompose with "the weight-free classical stages": their segmenter and trimapper
    sections are `classical`'s (they had drifted: no side band, frame anchor, part restoration, frame gap)."""
    from omegaconf import OmegaConf

    from layerkit.config import config_dir

    classical = OmegaConf.load(config_dir() / "classical.yaml")
    other = OmegaConf.load(config_dir() / f"{name}.yaml")
    for section in ("segmenter", "trimapper"):
        assert OmegaConf.to_container(other[section]) == OmegaConf.to_container(classical[section]), section
