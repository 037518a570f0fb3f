"""Learned configs fetch weights as Hugging Face tools do: hub cache, HF_HUB_OFFLINE respected, size announced first.

The hub is never contacted: ``HfApi.model_info`` is replaced by a stand-in that returns file sizes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from layerkit.errors import LayerkitError, MissingModelError
from layerkit.modules import hub

FILES = [("config.json", 1_000), ("model.safetensors", 2_500_000_000), ("pytorch_model.bin", 2_600_000_000),
         ("preprocessor_config.json", 500)]


def _fake_info(calls: list[str], fail: Exception | None = None):
    def model_info(self, repo_id: str, **kw):  # noqa: ANN001, ANN202 - HfApi.model_info stand-in
        calls.append(repo_id)
        assert kw.get("files_metadata") is True
        if fail is not None:
            raise fail
        return SimpleNamespace(siblings=[SimpleNamespace(rfilename=n, size=b) for n, b in FILES])
    return model_info


def test_download_size_counts_one_weight_format() -> None:
    sib = [SimpleNamespace(rfilename=n, size=b) for n, b in FILES]
    assert hub.download_size(sib) == (2_500_001_500, 5_100_001_500)
    only_bin = [SimpleNamespace(rfilename="pytorch_model.bin", size=7), SimpleNamespace(rfilename="config.json", size=1)]
    assert hub.download_size(only_bin) == (8, 8)


def test_uncached_hub_id_is_downloaded_with_its_size_announced(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    calls: list[str] = []
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", _fake_info(calls))
    assert hub.downloads_allowed()
    assert hub.missing_model("acme/big", "segmenter.model") == []  # the check stays offline
    assert calls == []
    assert hub.pretrained_source("acme/big", "segmenter.model") == ("acme/big", {"local_files_only": False})
    assert calls == ["acme/big"]
    err = capsys.readouterr().err
    assert "downloading acme/big for segmenter.model: about 2.5 GB (repository 5.1 GB)" in err
    assert "HF_HUB_OFFLINE=1" in err and str(tmp_path / "cache") in err


def test_offline_refuses_and_unreachable_hub_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls: list[str] = []
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", _fake_info(calls))
    (msg,) = hub.missing_model("acme/big", "matter.model")  # HF_HUB_OFFLINE=1 from conftest
    assert "HF_HUB_OFFLINE=1 forbids downloading" in msg and "matter.model=DIR" in msg
    with pytest.raises(MissingModelError, match="HF_HUB_OFFLINE"):
        hub.pretrained_source("acme/big", "matter.model")
    assert calls == []  # offline: the hub is not even asked
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", _fake_info(calls, OSError("Network is unreachable\nmore")))
    with pytest.raises(MissingModelError) as e:
        hub.pretrained_source("acme/big", "matter.model")
    assert "\n" not in str(e.value) and "Network is unreachable" in str(e.value) and "matter.model=DIR" in str(e.value)


def test_matte_anything_config_is_sam_trimap_vitmatte_without_generator() -> None:
    from layerkit import Pipeline

    with pytest.raises(LayerkitError, match="3 model.*grounder.*segmenter.*matter"):
        Pipeline.from_config("matte_anything")  # offline and nothing cached: one line naming every model
    pipe = Pipeline.from_config("matte_anything", check_weights=False)
    assert type(pipe.segmenter).__name__ == "HFSamSegmenter"
    assert type(pipe.trimapper).__name__ == "TransparencyTrimapper" and pipe.trimapper.transparency_prompt
    assert type(pipe.matter).__name__ == "VitMatteMatter"
    assert pipe.generator is None and pipe.grounder is not None
