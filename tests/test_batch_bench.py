"""benchmarks/batch.py runs end to end on a tiny input (a plumbing check, no timing asserted)."""

from __future__ import annotations

import json

import pytest
from conftest import load_benchmark

pytestmark = pytest.mark.slow


def test_batch_benchmark_smoke(tmp_path, capsys):
    bench = load_benchmark("batch")
    assert bench.main(["--n", "2", "--side", "64", "--engines", "local:1", "-o", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "batch_bench.json").read_text())
    (row,) = doc["rows"]
    assert (row["engine"], row["workers"], row["ok"], row["errors"]) == ("local", 1, 2, [])
    assert row["steady_images"] == 1 and row["worker_cpu_s_per_image"] > 0 and row["peak_rss_mb_per_worker"][0] > 100
    md = (tmp_path / "batch_bench.md").read_text()
    assert "| local | 1 | " in md and " | 2/2 | " in md and "steady img/s" in md
