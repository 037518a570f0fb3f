"""Config → pipeline: shipped configs, overrides, validation errors, registry, swapping, save/load."""

from __future__ import annotations

import pytest

from layerkit import Pipeline
from layerkit.config import apply_overrides, available_configs, load_config, parse_override
from layerkit.errors import ConfigError
from layerkit.modules.matting.closed_form import ClosedFormMatter
from layerkit.registry import REGISTRY, build, resolve


def test_classical_builds_with_components():
    pipe = Pipeline.from_config("classical")
    comps = pipe.components
    assert list(comps) == ["generator", "grounder", "segmenter", "trimapper", "matter", "decomposer", "refiner", "multilayer",
                          "completion"]
    assert comps["multilayer"] is None
    assert comps["generator"] is None and comps["grounder"] is None
    assert type(comps["matter"]).__name__ == "ClosedFormMatter"
    assert "classical" in available_configs()


def test_overrides_all_forms():
    a = Pipeline.from_config("classical", ["trimapper.band=12"])
    b = Pipeline.from_config("classical", {"trimapper.band": 12})
    c = Pipeline.from_config("classical", trimapper__band=12)
    assert a.trimapper.band == b.trimapper.band == c.trimapper.band == 12
    assert parse_override("x.y=[1, 2]") == ("x.y", [1, 2])


def test_backend_change_drops_old_keys():
    cfg = apply_overrides({"refiner": {"backend": "wavelet", "levels": 2}}, {"refiner.backend": "none"})
    assert cfg["refiner"] == {"backend": "none"}
    assert Pipeline.from_config("classical", {"refiner.backend": "none"}).refiner is None


@pytest.mark.parametrize("overrides, match", [
    ({"matter.bandwidth": 3}, r"unknown key 'matter.bandwidth' for matter backend 'closed_form'; valid keys: backend, cg_tolerance"),
    ({"matter.backend": "magic"}, r"unknown matter backend 'magic'; valid names: closed_form, vitmatte"),
    ({"pipeline.speed": 1}, r"unknown key 'pipeline.speed'; valid keys: name, device"),
    ({"colour.backend": "x"}, r"unknown config section 'colour'"),
    ({"trimapper.band": "wide"}, r"trimapper.band must be of type int"),
    ({"segmenter.backend": "none"}, r"segmenter is required"),
    ({"pipeline.consistent": "yes please"}, r"must be true or false"),
])
def test_config_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        Pipeline.from_config("classical", overrides)


def test_unknown_config_lists_shipped():
    with pytest.raises(ConfigError, match="shipped configs: .*classical"):
        load_config("nope")


def test_dotted_path_backend():
    stage = build("matter", "layerkit.modules.matting.closed_form:ClosedFormMatter", {"radius": 2})
    assert isinstance(stage, ClosedFormMatter) and stage.radius == 2
    with pytest.raises(ConfigError, match="cannot import"):
        resolve("matter", "no_such_pkg.mod:Cls")


def test_registry_is_flat_and_complete():
    for role, entries in REGISTRY.items():
        for name, target in entries.items():
            assert ":" in target and target.startswith("layerkit."), (role, name)


def test_swap_and_save_config_roundtrip(tmp_path):
    pipe = Pipeline.from_config("classical", {"trimapper.band": 9})
    pipe.matter = ClosedFormMatter(radius=2)
    path = tmp_path / "pipe.yaml"
    pipe.save_config(path)
    again = Pipeline.from_config(path)
    assert again.trimapper.band == 9
    assert isinstance(again.matter, ClosedFormMatter)
    assert again.config() == pipe.config() | {"matter": again.config()["matter"]}
    assert again.config()["matter"]["backend"] == "layerkit.modules.matting.closed_form:ClosedFormMatter"


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("segmenter: [unclosed")
    with pytest.raises(ConfigError, match="not valid"):
        Pipeline.from_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Pipeline.from_config(tmp_path / "missing.yaml")


def test_from_config_accepts_overlay_specs():
    from layerkit.errors import MissingModelError

    pipe = Pipeline.from_config("classical+hfa", check_weights=False)
    assert type(pipe.refiner).__name__ == "HFARefiner"
    assert pipe.settings.name == "classical+hfa"
    with pytest.raises(MissingModelError, match="refiner"):
        Pipeline.from_config("classical+hfa")
    with pytest.raises(ConfigError, match="unknown overlay 'nope'"):
        Pipeline.from_config("classical+nope")
    # a user override that names the overlay's section wins over the overlay
    assert type(Pipeline.from_config("classical+hfa", {"refiner.backend": "wavelet"}).refiner).__name__ == "WaveletRefiner"
    peel = Pipeline.from_config("classical+peel")  # multi-layer peeling: no `core` initialisation
    assert peel.segmenter.inits == ("histogram", "center") and peel.segmenter.fill_holes == 0.7
