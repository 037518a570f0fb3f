"""``layerkit bench --interactive``: the click protocol per config against plain GrabCut, and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_composite
from PIL import Image

from layerkit.cli import main
from layerkit.errors import DataError
from layerkit.evaluation.interactive import PEER, find_click_samples, ratio_to_peer


def write_sets(root: Path, n: int = 2) -> tuple[Path, Path]:
    """``n`` composite sub-folders and ``n`` real-photo pairs made from code-built composites."""
    comp, real = root / "comp", root / "real"
    real.mkdir(parents=True)
    for i in range(n):
        c = make_composite(64, 80, seed=i)
        u8 = (c["image"] * 255 + 0.5).astype(np.uint8)
        a8 = (c["alpha"] * 255 + 0.5).astype(np.uint8)
        (comp / f"{i:04d}").mkdir(parents=True)
        Image.fromarray(u8).save(comp / f"{i:04d}" / "composite.png")
        Image.fromarray(a8).save(comp / f"{i:04d}" / "gt_alpha.png")
        Image.fromarray(u8).save(real / f"P{i}_input.png")
        Image.fromarray(a8).save(real / f"P{i}_alpha.png")
    return comp, real


def test_bench_interactive_on_composites_and_real_photos(tmp_path: Path) -> None:
    comp, real = write_sets(tmp_path)
    for data, kind, first in ((comp, "composites", "0000"), (real, "real_photos", "P0")):
        out = tmp_path / f"noc_{kind}"
        assert main(["bench", "--interactive", "--data", str(data), "--configs", "classical", "--max-clicks", "4",
                     "-o", str(out), "--quiet"]) == 0
        doc = json.loads((out / "results.json").read_text())
        assert doc["kind"] == kind and doc["n"] == 2 and doc["configs"] == ["classical"]
        assert set(doc["means"]) == {"classical", PEER}
        for m in ("classical", PEER):
            v = doc["means"][m]
            assert 1 <= v["NoC@90"] <= 4 and 0.0 <= v["IoU@1"] <= 1.0
            for row in doc["samples"]:
                assert 1 <= len(row[m]["ious"]) <= 4
        # a disc on texture: the pipeline's first mask is already good, plain GrabCut's first isn't
        assert doc["means"]["classical"]["IoU@1"] > 0.8 > doc["means"][PEER]["IoU@1"]
        table = (out / "table.md").read_text()
        assert "NoC@90 / peer" in table and f"| {PEER} |" in table and f"| {first} |" in table


def test_bench_interactive_limit_ids_and_no_peer(tmp_path: Path) -> None:
    comp, real = write_sets(tmp_path, n=3)
    out = tmp_path / "o"
    assert main(["bench", "--interactive", "--data", str(real), "--configs", "classical", "--ids", "P2,P0",
                 "--no-peer", "--max-clicks", "2", "-o", str(out), "--quiet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [r["id"] for r in doc["samples"]] == ["P0", "P2"] and list(doc["means"]) == ["classical"]
    kind, rows = find_click_samples(comp, limit=1, offset=1)
    assert kind == "composites" and [r.id for r in rows] == ["0001"]


def test_ratio_to_peer() -> None:
    res = {"means": {"a": {"NoC@90": 3.0}, PEER: {"NoC@90": 6.0}}}
    assert ratio_to_peer(res) == {"a": 0.5}
    assert ratio_to_peer({"means": {"a": {"NoC@90": 3.0}}}) == {}


def test_bench_interactive_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    comp, _ = write_sets(tmp_path, n=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "o"
    cases = ((["--data", str(empty)], "no samples in"),
             (["--data", str(tmp_path / "none")], "does not exist"),
             (["--data", str(comp), "--limit", "0"], "--limit must be at least 1"),
             (["--data", str(comp), "--max-clicks", "0"], "--max-clicks must be at least 1"),
             (["--data", str(comp), "--ids", "9999"], "unknown sample id"),
             (["--data", str(comp), "--configs", f"classical,{PEER}"], "peer's name"),
             (["--data", str(comp), "--configs", "nosuchconfig"], "unknown pipeline config"))
    for extra, msg in cases:
        args = ["bench", "--interactive", "--configs", "classical", "-o", str(out), *extra]
        if "--configs" in extra:
            args = ["bench", "--interactive", "-o", str(out), *extra]
        assert main(args) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], (extra, err)
        assert not out.exists()
    # an old output stays intact when the new run is refused
    out.mkdir()
    (out / "keep.txt").write_text("old")
    assert main(["bench", "--interactive", "--data", str(comp), "--configs", "classical", "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and (out / "keep.txt").read_text() == "old"


def test_find_click_samples_errors(tmp_path: Path) -> None:
    comp, _ = write_sets(tmp_path, n=1)
    with pytest.raises(DataError, match="--offset"):
        find_click_samples(comp, offset=-1)
