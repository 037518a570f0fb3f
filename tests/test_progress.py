"""One progress mechanism (tqdm) for stages, multi-object runs and benchmarks; --quiet silences all."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import make_composite

from layerkit import Pipeline, Prompt, progress
from layerkit.progress import ItemBar, StageProgress


def test_stage_bar_shows_the_running_stage() -> None:
    buf = io.StringIO()
    pipe = Pipeline.from_config("classical")
    pipe.progress = StageProgress(delay=0.0, stream=buf)
    c = make_composite()
    pipe(c["image"], Prompt(boxes=[c["box"]]))
    pipe.progress.close()
    text = buf.getvalue()
    assert "decompose" in text and "stage" in text and "matte" in text


def test_item_bar_has_an_eta_and_counts_failures() -> None:
    buf = io.StringIO()
    bar = ItemBar(4, "classical", stream=buf)
    bar.update("0000", "ok")
    assert np.isfinite(bar.eta()) and bar.eta() >= 0
    bar.update("0001", "FAILED (boom)", failed=True)
    bar.close()
    text = buf.getvalue()
    assert "classical" in text and "2/4" in text and "1 failed" in text and "<" in text  # tqdm's elapsed<remaining


def test_quiet_silences_every_bar() -> None:
    buf = io.StringIO()
    progress.set_quiet(True)
    try:
        bar = ItemBar(2, "x", stream=buf)
        bar.update("a")
        bar.close()
        stage = StageProgress(delay=0.0, stream=buf)
        stage("segment", "start", 0.0)
        stage("segment", "end", 0.1)
        assert progress.diffusers_bar_config()["disable"] is True
    finally:
        progress.set_quiet(False)
    assert buf.getvalue() == ""
    assert progress.diffusers_bar_config()["disable"] is False  # diffusers' own step bars stay on otherwise


def test_cli_quiet_prints_nothing_but_the_output(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from layerkit.cli import main
    from layerkit.io.image import save_image

    c = make_composite()
    img = tmp_path / "in.png"
    save_image(c["image"], img)
    box = ",".join(str(int(v)) for v in c["box"])
    assert main(["layers", str(img), "--box", box, "-o", str(tmp_path / "s.psd"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.strip().endswith("s.psd")
    assert not progress.is_quiet()  # the switch does not outlive the command
