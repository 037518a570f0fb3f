"""``layerkit make-dataset --task reflayer --from-batch``: triplets from a batch output, quality-filtered."""

from __future__ import annotations

import json

import numpy as np
import pytest
from batch_fixtures import BAD, make_collection
from conftest import make_composite
from PIL import Image

from layerkit.batch.jobs import list_jobs
from layerkit.batch.runner import run_batch
from layerkit.batch.triplets import QualityFilter, _gradient, layer_quality, visible_prompt
from layerkit.batch.worker import WorkerSpec
from layerkit.cli import main
from layerkit.cli.layers import prompts_from_records


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("trip")
    imgs, prompts = make_collection(root, n=2)
    out = root / "out"
    s = run_batch(list_jobs(str(imgs), str(prompts)), WorkerSpec(out=str(out)), workers=1, progress=False)
    assert (s.done, s.failed) == (2, 1)
    return root, out


def test_triplets_from_a_batch_output(batch_out, capsys):
    root, out = batch_out
    trip = root / "triplets"
    assert main(["make-dataset", "--task", "reflayer", "--from-batch", str(out), "-o", str(trip), "--quiet"]) == 0
    kept = [json.loads(x) for x in (trip / "index.jsonl").read_text().splitlines()]
    assert [k["source"] for k in kept] == ["im0", "im1"]  # the failed image is not a source
    for k in kept:
        image = np.asarray(Image.open(trip / k["image"]))
        layer = np.asarray(Image.open(trip / k["layer"]))
        assert image.shape[:2] == layer.shape[:2] and layer.shape[2] == 4
        prompts, names = prompts_from_records([k["prompt"]])  # the schema of layerkit layers --prompts
        assert names == ["disc"] and prompts[0].boxes is not None
        assert k["quality"]["psnr"] >= 30 and k["quality"]["edge"] >= 1.0
    doc = json.loads((trip / "filter.json").read_text())
    assert (doc["images"], doc["kept"], doc["rejected"]) == (2, 2, 0) and doc["filter"] == QualityFilter().__dict__
    # a strict filter rejects them all and says why; the old output is left as it was
    assert main(["make-dataset", "--task", "reflayer", "--from-batch", str(out), "-o", str(trip), "--quiet"]) == 2
    strict = root / "strict"
    assert main(["make-dataset", "--task", "reflayer", "--from-batch", str(out), "-o", str(strict), "--quiet",
                 "--min-psnr", "200", "--max-mass", "0.1"]) == 0
    doc = json.loads((strict / "filter.json").read_text())
    assert doc["kept"] == 0 and doc["rejected_by_reason"] == {"recomposition": 2, "alpha_mass": 2}
    rej = [json.loads(x) for x in (strict / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in rej) == ["im0", "im1"] and all(r["reasons"] for r in rej)


def test_quality_measures_separate_good_and_bad_layers():
    c = make_composite(96, 128)
    grad, none = _gradient(c["image"]), np.zeros_like(c["alpha"])
    good = layer_quality(c["alpha"], none, grad, 45.0)
    assert QualityFilter().reasons(good) == []
    shifted = np.roll(c["alpha"], 30, axis=1)  # a matte off the object: its edge is not on an image edge
    assert "edge" in QualityFilter().reasons(layer_quality(shifted, none, grad, 45.0))
    leak = np.zeros_like(c["alpha"])
    leak[:, :40] = 1.0  # background leaking in along the frame
    assert "border" in QualityFilter().reasons(layer_quality(leak, none, grad, 45.0))
    mush = np.full_like(c["alpha"], 0.4) * (c["alpha"] > 0.1)
    assert "soft_matte" in QualityFilter().reasons(layer_quality(mush, none, grad, 45.0))
    speck = np.zeros_like(c["alpha"])
    speck[40:42, 60:62] = 1
    assert "alpha_mass" in QualityFilter().reasons(layer_quality(speck, none, grad, 45.0))
    covered = layer_quality(c["alpha"], (c["alpha"] > 0.01).astype(np.float32), grad, 45.0)
    assert "hidden" in QualityFilter().reasons(covered) and covered["visible"] < 0.1
    assert QualityFilter().reasons({**good, "psnr": 20.0}) == ["recomposition"]
    p = visible_prompt(c["alpha"], none)
    x0, y0, x1, y1 = p["box"]
    assert abs(x0 - c["box"][0]) <= 3 and abs(y1 - c["box"][3]) <= 3 and x0 < p["points"][0][0] < x1
    assert visible_prompt(c["alpha"], np.ones_like(c["alpha"])) is None


def test_triplet_bad_inputs(tmp_path, capsys):
    (tmp_path / "notbatch").mkdir()
    not_batch = str(tmp_path / "notbatch")
    assert main(["make-dataset", "--task", "reflayer", "--from-batch", not_batch, "-o", str(tmp_path / "t")]) == 2
    assert "not a layerkit batch output" in capsys.readouterr().err
    assert main(["make-dataset", "--from-batch", str(tmp_path / "notbatch"), "-o", str(tmp_path / "t")]) == 2
    assert "add --task reflayer" in capsys.readouterr().err
    assert main(["make-dataset", "-o", str(tmp_path / "t")]) == 2
    assert "needs --fg-dir and --bg-dir" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "batch.json").write_text("{}")
    (tmp_path / "empty" / "index.jsonl").write_text(json.dumps({"id": BAD, "status": "failed"}) + "\n")
    assert main(["make-dataset", "--task", "reflayer", "--from-batch", str(tmp_path / "empty"), "-o", str(tmp_path / "t")]) == 2
    assert "no finished image" in capsys.readouterr().err and not (tmp_path / "t").exists()
