"""benchmarks/gpu.py on the CPU with tiny nets: the script runs, writes its JSON and table, times every row."""

from __future__ import annotations

import json
import math
from pathlib import Path

from conftest import load_benchmark


def _gpu_bench():
    return load_benchmark("gpu")


def test_gpu_bench_tiny_cpu(tmp_path: Path) -> None:
    bench = _gpu_bench()
    out = tmp_path / "bench"
    result = bench.main(["--tiny", "--device", "cpu", "--stages", "hfa,fbdd", "--steps", "2", "--runs", "1",
                         "--warmup", "1", "--out", str(out), "--tmp", str(tmp_path / "models")])
    data = json.loads((out / "gpu_bench.json").read_text())
    assert data["rows"] == json.loads(json.dumps(result["rows"], default=str))
    assert data["meta"]["torch"] and data["meta"]["stages"] == ["hfa", "fbdd"]
    rows = data["rows"]
    assert not [r for r in rows if "error" in r], rows
    assert {r["stage"] for r in rows} == {"hfa", "fbdd"}
    settings = [r["setting"] for r in rows if r["stage"] == "fbdd"]
    assert any("batch_layers=true" in s for s in settings) and any("batch_layers=false" in s for s in settings)
    for r in rows:
        assert isinstance(r["median_ms"], float) and math.isfinite(r["median_ms"]) and r["median_ms"] > 0
        assert r["runs"] == 1 and r["params"] > 0 and r["dtype"] == "float32"
    assert [r for r in rows if r["path"].startswith("layerkit:")]
    table = (out / "gpu_bench.md").read_text()
    assert "| stage | setting |" in table and "FBDDDecomposer" in table and "HFARefiner" in table
    assert not list((tmp_path / "models").iterdir())  # the random models are removed


def test_gpu_bench_reports_a_failing_stage_and_goes_on(tmp_path: Path, monkeypatch) -> None:
    bench = _gpu_bench()

    def broken(b, stage):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(bench.STAGES, "sam", broken)
    result = bench.main(["--tiny", "--device", "cpu", "--stages", "sam,hfa", "--runs", "1", "--warmup", "1",
                         "--out", str(tmp_path)])
    err = [r for r in result["rows"] if "error" in r]
    assert err == [{"stage": "sam", "setting": "(stage)", "error": "RuntimeError: boom"}]
    assert any(r["stage"] == "hfa" and r["median_ms"] > 0 for r in result["rows"])
    assert "FAILED" in (tmp_path / "gpu_bench.md").read_text()
