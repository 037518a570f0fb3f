"""Real photos with a GT matte only: derived prompts, whole-image scoring, the plain-chain peer, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_composite
from PIL import Image

from layerkit.cli import main
from layerkit.errors import DataError
from layerkit.evaluation import realphoto as R
from layerkit.evaluation.peer import grabcut_mask, plain_chain
from layerkit.types import Prompt


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def write_photos(root: Path, ids: tuple[str, ...] = ("GT01", "GT02")) -> Path:
    """alphamatting.com-style input/alpha pairs (no trimaps) from the synthetic disc composite."""
    root.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(ids):
        c = make_composite(72, 96, seed=k)
        Image.fromarray(_u8(c["image"]), "RGB").save(root / f"{i}_input.png")
        Image.fromarray(_u8(c["alpha"]), "L").save(root / f"{i}_alpha.png")
    return root


def test_derived_prompts_follow_the_user_rule() -> None:
    gt = np.zeros((50, 100))
    gt[10:30, 20:60] = 1.0
    gt[29, 20:60] = 0.4  # not object (α ≤ 0.5)
    box = R.padded_box(gt > 0.5)
    assert box == [16.0, 6.0, 64.0, 33.0]  # 4 % of the long side (100) = 4 px on each side
    gt2 = np.zeros((50, 100))
    gt2[40:50, 0:10] = 1.0  # touching the corner: the box is clipped to the image
    assert R.padded_box(gt2 > 0.5) == [0.0, 36.0, 14.0, 50.0]
    ring = np.zeros((60, 60), bool)
    ring[10:40, 10:50] = True
    ring[10:40, 10:20] = False  # the deepest pixel is the centre of the remaining 30×30 square
    x, y = R.deepest_point(ring)
    assert 33 <= x <= 36 and 23 <= y <= 26 and ring[y, x]
    p = R.derive_prompt(gt, "box+point")
    assert p.boxes is not None and p.points is not None and (gt > 0.5)[int(p.points[0, 1]), int(p.points[0, 0])]
    assert R.derive_prompt(gt, "gt-mask").mask.sum() == 19 * 40  # row 29 (α 0.4) is not object
    with pytest.raises(DataError, match="no pixel with α > 0.5"):
        R.derive_prompt(np.zeros((8, 8)), "box")
    with pytest.raises(DataError, match="unknown prompt kind"):
        R.derive_prompt(gt, "scribble")


def test_find_samples_and_errors(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "p")
    (root / "GT01_trimap1.png").write_bytes(b"")  # trimaps beside are ignored
    assert R.is_real_photo_folder(root) and not R.is_real_photo_folder(tmp_path)
    assert [s.id for s in R.find_real_samples(root)] == ["GT01", "GT02"]
    assert [s.id for s in R.find_real_samples(root, ["GT02"])] == ["GT02"]
    with pytest.raises(DataError, match="GT09, not in"):
        R.find_real_samples(root, ["GT09"])
    with pytest.raises(DataError, match="does not exist"):
        R.find_real_samples(tmp_path / "nope")
    (root / "GT02_alpha.png").unlink()
    with pytest.raises(DataError, match="GT02_alpha.png"):
        R.find_real_samples(root)


def test_scoring_is_over_the_whole_image(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "p", ("GT01",))
    (s,) = R.find_real_samples(root)
    gt = np.asarray(Image.open(s.alpha), np.float64) / 255.0
    perfect = R.evaluate_real_sample(lambda img, p: gt, s)
    assert perfect["sad"] == 0.0 and perfect["iou"] == 1.0 and perfect["prompt"]["boxes"]
    empty = R.evaluate_real_sample(lambda img, p: np.zeros(img.shape[:2]), s, "point")
    assert empty["sad"] == pytest.approx(gt.sum() / 1000) and empty["iou"] == 0.0 and "points" in empty["prompt"]
    recs = R.evaluate_real(lambda img, p: np.zeros((3, 3)), [s])  # a wrong size is that photo's error, the run goes on
    assert "prediction is (3, 3)" in recs[0]["error"]


def test_plain_chain_segments_the_disc_from_a_box_and_a_point() -> None:
    c = make_composite(72, 96)
    gt = c["alpha"] > 0.5
    for prompt in (Prompt(boxes=[R.padded_box(gt)]), Prompt(points=[list(R.deepest_point(gt))]),
                   Prompt(boxes=[R.padded_box(gt)], points=[list(R.deepest_point(gt))])):
        m = grabcut_mask(c["image"], prompt)
        assert (m & gt).sum() / (m | gt).sum() > 0.8  # plain GrabCut from a click is the weakest
    res = plain_chain(c["image"], Prompt(boxes=[R.padded_box(gt)]))
    assert R.score_alpha(res.alpha, c["alpha"])["iou"] > 0.9
    assert res.background.shape == c["image"].shape and res.foreground.shape == c["image"].shape
    assert np.abs(res.background - c["bg"])[gt].mean() < 0.25  # the disc is inpainted away
    np.testing.assert_array_equal(grabcut_mask(c["image"], Prompt(mask=gt)), gt)


def test_cli_eval_runs_the_config_and_the_peer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_photos(tmp_path / "p")
    out = tmp_path / "out"
    assert main(["eval", str(root), "--config", "classical", "--prompt", "box", "-o", str(out), "--quiet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [r["run"] for r in doc["summary"]] == ["classical", R.PEER_NAME]
    assert doc["summary"][1]["sad_vs_peer"] == 1.0
    for run in doc["runs"]:
        assert run["n_ok"] == 2 and run["mean"]["iou"] > 0.9
    assert doc["runs"][0]["timings_mean"]  # per-stage times of the pipeline
    md = (out / "table.md").read_text()
    assert "## Summary" in md and "SAD ÷ peer" in md and "worst IoU" in md and R.PEER_NAME in md
    out2 = tmp_path / "out2"
    assert main(["bench", "--data", str(root), "--configs", "classical", "--prompt", "point", "--ids", "GT02",
                 "--no-peer", "-o", str(out2), "--quiet"]) == 0
    doc2 = json.loads((out2 / "results.json").read_text())
    assert [r["run"] for r in doc2["summary"]] == ["classical"] and doc2["photos"] == "GT02"
    assert (out2 / "report.html").is_file()


def test_cli_bad_input_is_one_line_and_leaves_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_photos(tmp_path / "p")
    out = tmp_path / "out"
    assert main(["eval", str(root), "--ids", "GT07", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("layerkit: error:") and "GT07" in err[0]
    assert not out.exists()
    assert main(["eval", str(root), "--limit", "0", "-o", str(out), "--quiet"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err and not out.exists()
