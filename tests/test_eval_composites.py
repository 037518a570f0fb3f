"""``layerkit eval`` on composite folders: discovery, scoring, failures, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_composite

from layerkit.cli import main
from layerkit.errors import DataError
from layerkit.evaluation.composites import METRIC_KEYS, evaluate_composites, find_samples, load_ground_truth, write_sample
from layerkit.evaluation.runner import EtaProgress
from layerkit.io.image import load_image
from layerkit.types import DecompositionResult, Layer, LayerStack


def write_data(root: Path, n: int = 2) -> Path:
    """``n`` composite samples in the make_composites.py format."""
    for i in range(n):
        c = make_composite(seed=i)
        box = [int(v) for v in c["box"]]
        meta = {"label": f"disc {i}", "box_xyxy": box, "point_xy": [64, 48]}
        write_sample(root / f"{i:04d}", c["image"], c["alpha"], c["fg"], c["bg"], meta)
    return root


class OraclePipe:
    """Returns the ground truth itself (optionally with the alpha shifted by ``alpha_bias``)."""

    def __init__(self, alpha_bias: float = 0.0, fail_on: str | None = None) -> None:
        self.alpha_bias = alpha_bias
        self.fail_on = fail_on
        self.prompts: list[Any] = []

    def __call__(self, image: str, prompt: Any) -> DecompositionResult:
        d = Path(image).parent
        if d.name == self.fail_on:
            raise RuntimeError("boom\nsecond line")
        self.prompts.append(prompt)
        from layerkit.evaluation.composites import CompositeSample

        gt = load_ground_truth(CompositeSample(d.name, d, {}))
        alpha = np.clip(gt["alpha"] + self.alpha_bias, 0, 1).astype(np.float32)
        fg = np.concatenate([gt["fg"], alpha[..., None]], axis=2)
        stack = LayerStack([Layer.from_rgb(gt["bg"], name="background"), Layer(fg, name="object")])
        return DecompositionResult(image=load_image(image), foreground=fg, background=gt["bg"], alpha=alpha,
                                   mask=alpha > 0.5, trimap=alpha, layers=stack, prompt=prompt,
                                   timings={"segment": 0.01, "matte": 0.02})


def test_find_samples_and_errors(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    samples = find_samples(data)
    assert [s.id for s in samples] == ["0000", "0001"]
    p = samples[0].prompt("box+point")
    assert p.boxes is not None and p.points is not None
    assert samples[0].prompt("point").boxes is None
    with pytest.raises(DataError, match="does not exist"):
        find_samples(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no sample"):
        find_samples(tmp_path / "empty")
    (data / "0001" / "gt_bg.png").unlink()
    with pytest.raises(DataError, match="0001.*missing gt_bg.png"):
        find_samples(data)
    (data / "0001").rename(tmp_path / "moved")
    (data / "0000" / "box.json").write_text(json.dumps({"box_xyxy": [1, 2, 3]}))
    with pytest.raises(DataError, match="box_xyxy"):
        find_samples(data)
    with pytest.raises(DataError, match="missing other.json"):
        find_samples(data, meta_file="other.json")


def test_oracle_scores_perfectly(tmp_path: Path) -> None:
    samples = find_samples(write_data(tmp_path / "data"))
    pipe = OraclePipe()
    recs = evaluate_composites(pipe, samples, "point")
    assert len(recs) == 2 and pipe.prompts[0].points is not None and pipe.prompts[0].boxes is None
    r = recs[0]
    assert set(METRIC_KEYS) <= set(r)
    assert r["sad"] == 0.0 and r["mse_e3"] == 0.0 and r["grad"] == 0.0 and r["iou"] == 1.0 and r["fg_l1"] == 0.0
    assert r["bg_psnr"] == 100.0 and r["bg_psnr_occ"] == 100.0
    assert r["recomp_psnr"] > 45  # the only error is the 8-bit rounding of composite.png
    assert r["timings"] == {"segment": 0.01, "matte": 0.02} and r["rss_mb"] > 0


def test_gt_mask_prompt_is_the_ground_truth_mask(tmp_path: Path) -> None:
    samples = find_samples(write_data(tmp_path / "data", n=1), prompt="gt-mask")
    gt = load_ground_truth(samples[0])["alpha"]
    p = samples[0].prompt("gt-mask")
    assert p.boxes is None and p.points is None
    np.testing.assert_array_equal(p.mask, gt > 0.5)
    # the real pipeline keeps a mask prompt as given: its mask is the GT mask
    from layerkit import Pipeline

    res = Pipeline.from_config("classical")(str(samples[0].path / "composite.png"), p)
    np.testing.assert_array_equal(res.mask, gt > 0.5)
    with pytest.raises(DataError, match="unknown prompt kind 'mask'.*gt-mask"):
        find_samples(tmp_path / "data", prompt="mask")


def test_biased_alpha_by_hand(tmp_path: Path) -> None:
    samples = find_samples(write_data(tmp_path / "data", n=1))
    gt = load_ground_truth(samples[0])["alpha"]
    r = evaluate_composites(OraclePipe(alpha_bias=0.1), samples)[0]
    expected = np.abs(np.clip(gt + 0.1, 0, 1) - gt).sum() / 1000
    assert r["sad"] == pytest.approx(expected, rel=1e-5)
    assert r["iou"] == pytest.approx(gt.sum() / np.clip(gt + 0.1, 0, 1).sum(), rel=1e-5)


def test_failing_sample_is_recorded(tmp_path: Path) -> None:
    samples = find_samples(write_data(tmp_path / "data"))
    lines: list[str] = []

    class Sink:
        def write(self, s: str) -> None:
            lines.append(s)

        def flush(self) -> None:
            pass

    recs = evaluate_composites(OraclePipe(fail_on="0000"), samples, progress=EtaProgress(2, "t", stream=Sink()))
    assert recs[0] == {"id": "0000", "error": "RuntimeError: boom"}
    assert "error" not in recs[1]
    text = "".join(lines)
    assert "t: 0000 FAILED (RuntimeError: boom)" in text  # a failure is written above the bar, and stays
    assert "2/2" in text and "1 failed" in text


def _patch_pipe(monkeypatch: pytest.MonkeyPatch, pipe: Any) -> None:
    import layerkit.cli.eval  # imported before patching, so it binds (and gets back) the real function

    monkeypatch.setattr(layerkit.cli.eval, "spec_pipeline", lambda args, spec: pipe)


def test_cli_writes_results_and_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    data = write_data(tmp_path / "data")
    _patch_pipe(monkeypatch, OraclePipe(fail_on="0001"))
    out = tmp_path / "report"
    assert main(["eval", str(data), "--config", "classical", "--box-from", "box.json", "-o", str(out), "--html"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["n"] == 2 and doc["n_ok"] == 1 and doc["n_failed"] == 1 and doc["prompt"] == "box"
    assert doc["mean"]["sad"] == 0.0 and doc["samples"][1]["error"].startswith("RuntimeError")
    assert doc["env"]["python"] and doc["timings_mean"]["matte"] == pytest.approx(0.02)
    table = (out / "table.md").read_text()
    assert "| 0000 | disc 0 |" in table and "| **mean** | 1/2 ok |" in table and "RuntimeError: boom" in table
    html = (out / "report.html").read_text()
    assert "data:image/jpeg;base64," in html and "<script>" in html
    assert "SAD" in capsys.readouterr().err


def test_cli_bad_inputs_exit_2_without_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    _patch_pipe(monkeypatch, OraclePipe())
    out = tmp_path / "report"
    (tmp_path / "empty").mkdir()
    broken = write_data(tmp_path / "broken", n=1)
    (broken / "0000" / "gt_alpha.png").unlink()
    for data, msg in ((tmp_path / "nope", "does not exist"), (tmp_path / "empty", "no sample"),
                      (broken, "missing gt_alpha.png")):
        assert main(["eval", str(data), "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("layerkit: error:") and msg in err[0]
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # no temp leftovers
    out.mkdir()
    assert main(["eval", str(write_data(tmp_path / "ok", 1)), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_all_failed_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_pipe(monkeypatch, OraclePipe(fail_on="0000"))
    out = tmp_path / "r"
    assert main(["eval", str(write_data(tmp_path / "d", 1)), "-o", str(out), "--quiet"]) == 1
    assert json.loads((out / "results.json").read_text())["mean"]["sad"] is None  # NaN mean written as null


@pytest.mark.slow
def test_cli_real_classical_pipeline(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data", n=1)
    out = tmp_path / "report"
    assert main(["eval", str(data), "--config", "classical", "--set", "refiner.backend=none", "-o", str(out), "--quiet"]) == 0
    r = json.loads((out / "results.json").read_text())["samples"][0]
    assert "error" not in r, r
    assert r["iou"] > 0.8 and r["recomp_psnr"] > 30 and set(r["timings"]) >= {"segment", "matte", "decompose"}
