"""``layerkit bench``: config specs with overlays, the report writer, shared runner plumbing, CLI."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_eval_composites import OraclePipe, write_data

from layerkit import Pipeline
from layerkit.cli import main
from layerkit.config import compose, parse_spec
from layerkit.errors import ConfigError, OutputError
from layerkit.evaluation.composites import METRICS
from layerkit.evaluation.report import Run, render_html, worst_first
from layerkit.evaluation.runner import EtaProgress, dump_json, markdown_table, run_items, summarise, write_outputs


@pytest.fixture
def overlays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "overlay"
    d.mkdir()
    (d / "nofreq.yaml").write_text("refiner: none\ntrimapper:\n  band_ratio: 0.05\n")
    (d / "wav3.yaml").write_text("refiner:\n  levels: 3\n  backend: wavelet\n")
    import layerkit.config

    monkeypatch.setattr(layerkit.config, "overlay_dir", lambda: d)
    return d


def test_parse_spec(tmp_path: Path) -> None:
    assert parse_spec("classical") == ("classical", [])
    assert parse_spec(" classical+hfa+x ") == ("classical", ["hfa", "x"])
    weird = tmp_path / "a+b.yaml"
    weird.write_text("{}")
    assert parse_spec(str(weird)) == (str(weird), [])
    with pytest.raises(ConfigError, match="not valid"):
        parse_spec("classical+")


def test_compose_layers_overlays_then_overrides(overlays: Path) -> None:
    c = compose("classical+nofreq+wav3", ["trimapper.band_ratio=0.08"])
    assert c.base == "classical"
    assert c.data["refiner"] == {"backend": "wavelet", "levels": 3}  # wav3 switched the backend nofreq had set
    assert c.data["trimapper"]["band_ratio"] == 0.08 and c.sources["trimapper.band_ratio"] == "override"
    assert c.sources["refiner.levels"] == "overlay wav3"
    c = compose("classical+wav3", ["refiner.backend=none"])
    assert c.data["refiner"] == {"backend": "none"}  # the user's backend drops the overlay's refiner keys
    with pytest.raises(ConfigError, match="unknown overlay config 'nope'.*shipped overlay configs: nofreq, wav3"):
        compose("classical+nope")
    with pytest.raises(ConfigError, match="does not exist"):
        compose("classical+/no/such.yaml")


def test_from_config_with_overlays(overlays: Path) -> None:
    pipe = Pipeline.from_config("classical+nofreq")
    assert pipe.refiner is None and pipe.settings.name == "classical+nofreq"
    assert pipe.config()["trimapper"]["band_ratio"] == 0.05
    pipe = Pipeline.from_config("classical+wav3", ["refiner.backend=none"])
    assert pipe.refiner is None
    with pytest.raises(ConfigError):
        Pipeline.from_config("nosuchconfig")


def test_run_items_and_progress() -> None:
    buf = io.StringIO()
    bar = EtaProgress(3, "x", stream=buf)

    def work(i: int) -> dict[str, Any]:
        if i == 1:
            raise ValueError("bad one")
        return {"id": str(i), "v": float(i)}

    recs = run_items([0, 1, 2], work, str, bar)
    assert recs[1] == {"id": "1", "error": "ValueError: bad one"}
    text = buf.getvalue()  # one tqdm bar: count, ETA (elapsed<remaining), the item's status and failures so far
    assert "x: 100%" in text and "3/3" in text and "<00:00" in text
    assert "1 failed" in text and bar.failed == 1
    assert summarise(recs, ["v"]) == {"v": 1.0}
    assert math.isnan(summarise([{"id": "a", "error": "e"}], ["v"])["v"])


def test_json_and_markdown_helpers() -> None:
    doc = json.loads(dump_json({"a": np.float32(1.5), "b": float("nan"), "c": [np.int64(2), float("inf")]}))
    assert doc == {"a": 1.5, "b": None, "c": [2, None]}
    md = markdown_table([{"id": "s|1", "x": 0.12345, "y": None}], [("id", "sample"), ("x", "X"), ("y", "Y")])
    assert md.splitlines() == ["| sample | X | Y |", "|---|---:|---:|", "| s\\|1 | 0.123 | – |"]


def test_write_outputs_is_atomic(tmp_path: Path) -> None:
    out = write_outputs(tmp_path / "o", {"a.txt": "x", "sub/b.bin": b"\x00"})
    assert (out / "a.txt").read_text() == "x" and (out / "sub" / "b.bin").read_bytes() == b"\x00"
    with pytest.raises(OutputError):
        write_outputs(tmp_path / "o", {"a.txt": "y"})

    class Boom(dict):
        def items(self):  # type: ignore[override]
            yield "a.txt", "partial"
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_outputs(tmp_path / "p", Boom())
    assert not (tmp_path / "p").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def _run(name: str, sads: list[float], fail: bool = False) -> Run:
    recs: list[dict[str, Any]] = [{"id": f"{i:04d}", "label": "x", "sad": s, "iou": 1 - s, "seconds": 0.1}
                                  for i, s in enumerate(sads)]
    if fail:
        recs.append({"id": "9999", "error": "RuntimeError: <boom> & co"})
    thumbs = {r["id"]: {"input": "data:image/jpeg;base64,AAAA"} for r in recs if "error" not in r}
    return Run(name, recs, summarise(recs, ["sad", "iou", "seconds"]), {"segment": 0.05, "matte": 0.1}, thumbs)


def test_report_writer() -> None:
    runs = [_run("classical", [0.5, 2.0, 1.0], fail=True), _run("classical+hfa", [0.1, 0.3, 0.2])]
    assert [r["id"] for r in worst_first(runs[0].records, "sad")] == ["0001", "0002", "0000"]
    assert [r["id"] for r in worst_first(runs[0].records, "iou", higher_is_better=True)] == ["0001", "0002", "0000"]
    html = render_html("bench <test>", runs, METRICS, "sad", {"data": "/tmp/d"})
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "bench &lt;test&gt;" in html and "RuntimeError: &lt;boom&gt; &amp; co" in html  # escaped
    assert html.count('class="sortable"') == 3 and "addEventListener('click'" in html
    assert html.count("data:image/png;base64,") == 2  # distributions + timings plot
    section = html[html.index("<h2>classical</h2>"):html.index("<h2>classical+hfa</h2>")]
    gallery = section[section.index("Samples, worst first"):]
    assert gallery.index("<b>0001</b>") < gallery.index("<b>0002</b>") < gallery.index("<b>0000</b>")
    assert 'data-v="2.0"' in section


def test_bench_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overlays: Path) -> None:
    import layerkit.cli.bench

    data = write_data(tmp_path / "data", n=2)
    pipes = {"classical": OraclePipe(), "classical+nofreq": OraclePipe(alpha_bias=0.05, fail_on="0001")}
    monkeypatch.setattr(layerkit.cli.bench, "spec_pipeline", lambda args, spec: pipes[spec])
    out = tmp_path / "bench"
    rc = main(["bench", "--data", str(data), "--configs", "classical,classical+nofreq", "--prompt", "box",
               "-o", str(out), "--quiet", "--thumb-height", "32"])
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    assert [r["config"] for r in doc["runs"]] == ["classical", "classical+nofreq"]
    assert doc["runs"][0]["mean"]["sad"] == 0.0 and doc["runs"][1]["n_failed"] == 1 and doc["runs"][1]["mean"]["sad"] > 0
    table = (out / "table.md").read_text()
    assert "## Summary (means)" in table and "## classical+nofreq" in table
    html = (out / "report.html").read_text()
    assert html.count("data:image/jpeg;base64,") == 6 * 3  # 3 successful samples x 6 pictures
    assert (out / "plots" / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_cli_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture, overlays: Path) -> None:
    data = write_data(tmp_path / "data", n=1)
    out = tmp_path / "bench"
    for configs, msg in (("classical+nope", "unknown overlay config 'nope'"), ("classical,classical", "twice"),
                         (",", "empty"), ("nosuchconfig", "unknown pipeline config")):
        assert main(["bench", "--data", str(data), "--configs", configs, "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
        assert not out.exists()
    assert main(["bench", "--data", str(tmp_path / "none"), "--configs", "classical", "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()
