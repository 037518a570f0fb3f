"""benchmarks/ceiling.py: the default against the best-initialisation and GT-mask ceilings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_benchmark
from test_eval_composites import write_data

ROOT = Path(__file__).resolve().parents[1]


def _ceiling():
    return load_benchmark("ceiling")


def test_ceiling_rows_and_oracle_choice(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", n=2)
    out = tmp_path / "ceil"
    assert _ceiling().main([str(data), "-o", str(out)]) == 0
    doc = json.loads((out / "ceiling.json").read_text())
    rows = doc["per_sample"]
    inits = [k for k in rows if k.startswith("init=")]
    assert inits == ["init=histogram", "init=center", "init=core"]  # classical's segmenter.inits, in order
    for sid, best in rows["best init (oracle)"].items():
        assert best["sad"] == min(rows[k][sid]["sad"] for k in inits)
    assert set(rows["GT mask (oracle)"]) == {"0000", "0001"}
    lines = {r["row"]: r for r in doc["summary"]}
    assert lines["best init (oracle)"]["sad"] <= min(lines[k]["sad"] for k in inits)
    assert lines["GT mask (oracle)"]["n"] == 2 and 0.0 <= lines["GT mask (oracle)"]["iou"] <= 1.0
    assert "| GT mask (oracle) | 2 |" in (out / "ceiling.md").read_text()


@pytest.mark.parametrize("case", ["missing data", "existing output", "no inits"])
def test_ceiling_bad_input_exits_2_without_output(tmp_path: Path, case: str, capsys: pytest.CaptureFixture) -> None:
    data = write_data(tmp_path / "data", n=1)
    out = tmp_path / "ceil"
    args = [str(data), "-o", str(out)]
    if case == "missing data":
        args[0] = str(tmp_path / "nope")
    elif case == "existing output":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    else:
        cfg = tmp_path / "one.yaml"
        text = (ROOT / "layerkit" / "configs" / "pipeline" / "classical.yaml").read_text()
        cfg.write_text(text.replace("inits: [histogram, center, core]", "inits: [core]"))
        args += ["--config", str(cfg)]
    code = _ceiling().main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and err[-1].startswith("ceiling.py: ")
    if case == "existing output":
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    else:
        assert not out.exists()
