"""benchmarks/ceiling_real.py: the default on real photos against the best-initialisation and GT-mask ceilings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_benchmark
from test_eval_realphoto import write_photos


def test_ceiling_real_rows_and_oracle_choice(tmp_path: Path) -> None:
    data = write_photos(tmp_path / "p")
    out = tmp_path / "ceil"
    assert load_benchmark("ceiling_real").main([str(data), "-o", str(out), "--ids", "GT01,GT02"]) == 0
    doc = json.loads((out / "ceiling.json").read_text())
    rows = doc["per_photo"]
    inits = [k for k in rows if k.startswith("init=")]
    assert len(inits) >= 2
    for pid, best in rows["best init (oracle)"].items():
        assert best["sad"] == min(rows[k][pid]["sad"] for k in inits)
    assert set(rows["GT mask (oracle)"]) == set(rows["plain chain"]) == {"GT01", "GT02"}
    assert "init=box" in rows  # the chain's own initialisation is a hypothesis of the oracle
    chained = rows["chain mask → trimap/matte"]
    assert set(chained) == {"GT01", "GT02"}
    for pid in chained:  # the chain's mask through our trimap and matte lands near the chain's own alpha
        assert abs(chained[pid]["iou"] - rows["plain chain"][pid]["iou"]) < 0.1, (pid, chained[pid], rows["plain chain"][pid])
    assert "| GT mask (oracle) | 2 |" in (out / "ceiling.md").read_text()


def test_ceiling_real_bad_input_exits_2_without_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_photos(tmp_path / "p")
    out = tmp_path / "ceil"
    assert load_benchmark("ceiling_real").main([str(data), "-o", str(out), "--ids", "GT09"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ceiling_real.py: ") and "GT09" in err[-1] and not out.exists()
