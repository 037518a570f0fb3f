"""``layerkit eval-matting``: trimap handling, DIM-style scoring over the unknown band, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_composite
from PIL import Image
from scipy import ndimage

from layerkit.cli import main
from layerkit.errors import DataError
from layerkit.evaluation import matting as MT


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def write_matting(root: Path, ids: tuple[str, ...] = ("GT01", "GT02")) -> Path:
    """alphamatting.com-style files made from the synthetic disc composite."""
    root.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(ids):
        c = make_composite(48, 64, seed=k)
        a = c["alpha"]
        Image.fromarray(_u8(c["image"]), "RGB").save(root / f"{i}_input.png")
        Image.fromarray(_u8(a), "L").save(root / f"{i}_alpha.png")
        a8 = _u8(a)
        soft = (a8 > 0) & (a8 < 255)
        for t, grow in (("1", 0), ("2", 3)):  # trimap2: unknown band grown by 3 px; known = exact 0/1 in the GT
            band = ndimage.binary_dilation(soft, iterations=grow) if grow else soft
            tri = np.where(band, 128, np.where(a8 == 255, 255, 0)).astype(np.uint8)
            Image.fromarray(tri, "L").save(root / f"{i}_trimap{t}.png")
    return root


def test_find_samples_and_errors(tmp_path: Path) -> None:
    root = write_matting(tmp_path / "m")
    s = MT.find_matting_samples(root)
    assert [x.id for x in s] == ["GT01/trimap1", "GT01/trimap2", "GT02/trimap1", "GT02/trimap2"]
    assert [x.id for x in MT.find_matting_samples(root, ["2"])] == ["GT01/trimap2", "GT02/trimap2"]
    with pytest.raises(DataError, match="trimap3"):
        MT.find_matting_samples(root, ["3"])
    with pytest.raises(DataError, match="does not exist"):
        MT.find_matting_samples(tmp_path / "nope")
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="no <ID>_input.png"):
        MT.find_matting_samples(tmp_path / "e")
    (root / "GT02_alpha.png").unlink()
    with pytest.raises(DataError, match="GT02_alpha.png"):
        MT.find_matting_samples(root)


def test_read_trimap_and_finalize(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 128, 255, 1]], np.uint8), "L").save(tmp_path / "t.png")
    t = MT.read_trimap(tmp_path / "t.png")
    assert t.tolist() == [[0.0, 0.5, 1.0, 0.5]]
    out = MT.finalize_matte(np.array([[0.7, 0.3001, 0.2, 1.4]]), t)
    assert out.tolist() == [[0.0, 77 / 255, 1.0, 1.0]]
    assert MT.finalize_matte(np.array([[0.7, 0.3001, 0.2, 0.5]]), t, quantize=False)[0, 1] == pytest.approx(0.3001)


def test_scores_by_hand(tmp_path: Path) -> None:
    root = write_matting(tmp_path / "m", ("GT01",))
    sample = MT.find_matting_samples(root, ["2"])[0]
    gt = np.asarray(Image.open(root / "GT01_alpha.png"), np.float64) / 255
    unknown = MT.read_trimap(sample.trimap) == 0.5
    perfect = MT.evaluate_matting_sample(lambda img, tri: gt, sample)
    assert perfect["sad"] == perfect["mse_e3"] == perfect["grad"] == perfect["conn"] == 0.0
    assert perfect["unknown_px"] == int(unknown.sum()) > 0
    zero = MT.evaluate_matting_sample(lambda img, tri: np.zeros_like(tri), sample)
    assert zero["sad"] == pytest.approx(gt[unknown].sum() / 1000)
    assert zero["mse_e3"] == pytest.approx((gt[unknown] ** 2).mean() * 1e3)
    assert zero["grad"] > 0 and zero["conn"] > 0


def test_failing_matter_is_recorded(tmp_path: Path) -> None:
    samples = MT.find_matting_samples(write_matting(tmp_path / "m", ("GT01",)))

    def matter(img: np.ndarray, tri: np.ndarray) -> np.ndarray:
        return np.zeros((3, 3))  # wrong size

    recs = MT.evaluate_matting(matter, samples)
    assert all("error" in r and "DataError" in r["error"] for r in recs)


@pytest.mark.slow
def test_cli_real_matter(tmp_path: Path) -> None:
    root = write_matting(tmp_path / "m", ("GT01",))
    out = tmp_path / "mat"
    assert main(["eval-matting", str(root), "--config", "classical", "-o", str(out), "--quiet", "--html"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["n_ok"] == 2 and doc["quantized to 8 bits"] is True
    assert [r["id"] for r in doc["mean_per_trimap"]] == ["mean trimap1", "mean trimap2"]
    assert 0 <= doc["mean"]["sad"] < 0.2  # closed-form matting of a smooth disc is nearly exact
    table = (out / "table.md").read_text()
    assert "| GT01/trimap1 |" in table and "| **mean** |" in table
    assert "data:image/jpeg;base64," in (out / "report.html").read_text()


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "mat"
    assert main(["eval-matting", str(tmp_path / "nope"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and not out.exists()
    root = write_matting(tmp_path / "m", ("GT01",))
    assert main(["eval-matting", str(root), "--trimaps", "7", "-o", str(out)]) == 2
    assert "trimap7" in capsys.readouterr().err and not out.exists()
