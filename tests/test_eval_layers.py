"""``layerkit eval-layers``: stacks from a folder or a pipeline, per-level report, CLI contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_dataset import sources  # noqa: F401  (fixture)

from layerkit.cli import main
from layerkit.errors import ConfigError, DataError
from layerkit.evaluation import layer_eval as LE
from layerkit.evaluation.dataset import find_layer_samples, make_dataset
from layerkit.types import Layer, LayerStack


@pytest.fixture
def multi(sources: tuple[Path, Path], tmp_path: Path) -> Path:  # noqa: F811
    fg, bg = sources
    return make_dataset(fg, bg, tmp_path / "multi", n=2, objects=(3, 3), seed=1, occlusion=(0.0, 0.6), cover=(0.08, 0.2))


def _predictions(multi: Path, out: Path, fuse_top: bool) -> Path:
    """GT stacks copied as predictions; with ``fuse_top`` the two top objects become one layer."""
    out.mkdir()
    for s in find_layer_samples(multi):
        if not fuse_top:
            shutil.copytree(s.path / "layers", out / s.id)
            continue
        gt = s.ground_truth()
        top = Layer(_over(gt[-2].rgba, gt[-1].rgba), name="fused")
        LayerStack([*gt.layers[:-2], top]).save(out / s.id)
    return out


def _over(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    from layerkit.ops.compositing import over

    return over(top, bottom)


def test_perfect_predictions(multi: Path, tmp_path: Path) -> None:
    samples = find_layer_samples(multi)
    predict = LE.folder_predictor(_predictions(multi, tmp_path / "p", False))
    recs = LE.evaluate_layer_samples(predict, samples)
    for r in recs:
        assert r["cost@0"] == 0.0 and r["alpha_iou@0"] == 1.0 and r["merges_used"] == 0 and r["n_pred"] == r["n_gt"] == 4


@pytest.mark.parametrize("protocol", LE.PROTOCOLS)
def test_fused_objects_recovered_by_merging(multi: Path, tmp_path: Path, protocol: str) -> None:
    samples = find_layer_samples(multi)
    recs = LE.evaluate_layer_samples(LE.folder_predictor(_predictions(multi, tmp_path / "p", True)), samples,
                                     group=False, protocol=protocol)
    for r in recs:
        assert r["n_pred"] == 3 and r["cost@0"] > 0
        assert r["cost@5"] == pytest.approx(0.0, abs=1e-3)  # 8-bit rounding of the fused layer
        assert r["levels"][1]["merged"] == "gt:2+3"


def test_one_layer_prediction_is_skipped_as_layerd_does(multi: Path, tmp_path: Path) -> None:
    pred = tmp_path / "p"
    pred.mkdir()
    samples = find_layer_samples(multi)
    for s in samples:
        LayerStack(s.ground_truth().layers[:1]).save(pred / s.id)  # the background alone
    recs = LE.evaluate_layer_samples(LE.folder_predictor(pred), samples)
    assert all("fewer than 2 layers in the prediction" in r["skipped"] and r["levels"] == [] for r in recs)
    recs = LE.evaluate_layer_samples(LE.folder_predictor(pred), samples, protocol="layerkit")
    assert all("skipped" not in r and r["cost@0"] > 0 for r in recs)
    out = tmp_path / "layers"
    assert main(["eval-layers", str(multi), "--pred-dir", str(pred), "-o", str(out), "--quiet"]) == 1  # nothing scored
    doc = json.loads((out / "results.json").read_text())
    assert doc["n_skipped"] == 2 and doc["levels"] == [] and "skipped" in (out / "table.md").read_text()


def test_missing_prediction_is_recorded(multi: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    recs = LE.evaluate_layer_samples(LE.folder_predictor(tmp_path / "empty"), find_layer_samples(multi))
    assert all("no prediction for sample" in r["error"] for r in recs)
    with pytest.raises(DataError):
        LE.folder_predictor(tmp_path / "nope")


def test_check_multilayer() -> None:
    with pytest.raises(ConfigError, match="--pred-dir"):
        LE.check_multilayer(object())  # no .layers


def test_cli_with_pred_dir(multi: Path, tmp_path: Path) -> None:
    pred = _predictions(multi, tmp_path / "p", True)
    out = tmp_path / "layers"
    assert main(["eval-layers", str(multi), "--pred-dir", str(pred), "--no-group", "--max-merges", "2",
                 "-o", str(out), "--quiet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"] == "layerd" and doc["n_skipped"] == 0
    assert [lv["merges"] for lv in doc["levels"]] == [0, 1]  # LayerD: levels up to the deepest reached
    assert [lv["reached"] for lv in doc["levels"]] == [2, 2]
    assert doc["levels"][0]["cost"] > doc["levels"][1]["cost"] == pytest.approx(0.0, abs=1e-3)
    table = (out / "table.md").read_text()
    assert "## Mean per merge level" in table and "| 0000 |" in table and "cost @2" in table and "LayerD" in table
    out2 = tmp_path / "layers_lk"
    assert main(["eval-layers", str(multi), "--pred-dir", str(pred), "--no-group", "--max-merges", "2",
                 "--protocol", "layerkit", "-o", str(out2), "--quiet"]) == 0
    doc2 = json.loads((out2 / "results.json").read_text())
    assert doc2["protocol"] == "layerkit" and [lv["merges"] for lv in doc2["levels"]] == [0, 1, 2]
    assert doc2["levels"][0]["cost"] == pytest.approx(doc["levels"][0]["cost"], abs=1e-6)  # level 0 agrees


def test_cli_bad_inputs(multi: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "layers"
    assert main(["eval-layers", str(tmp_path / "nope"), "--pred-dir", str(tmp_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and not out.exists()
    assert main(["eval-layers", str(multi), "--max-merges", "-1", "--pred-dir", str(tmp_path), "-o", str(out)]) == 2
    assert "--max-merges" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as e:  # argparse's choices
        main(["eval-layers", str(multi), "--protocol", "LayerD", "--pred-dir", str(tmp_path), "-o", str(out)])
    assert e.value.code == 2 and "--protocol" in capsys.readouterr().err and not out.exists()


def test_pipeline_predictor_passes_prompts(multi: Path) -> None:
    samples = find_layer_samples(multi)
    seen: list[list] = []
    orders: list[str] = []

    class FakePipe:
        def layers(self, image: str, prompts: list, **kw: str) -> LayerStack:
            seen.append(prompts)
            orders.append(kw.get("order", "auto"))
            return LayerStack.load(Path(image).parent / "layers")

    recs = LE.evaluate_layer_samples(LE.pipeline_predictor(FakePipe(), "point"), samples)
    assert all(r["cost@0"] == 0.0 for r in recs)
    assert [p.points.tolist() for p in seen[0]] == [[o["point_xy"]] for o in samples[0].meta["objects"]]
    LE.evaluate_layer_samples(LE.pipeline_predictor(FakePipe(), "box", shuffle_seed=3), samples)
    shuffled = [p.boxes.tolist()[0] for p in seen[-1]]
    assert sorted(shuffled) == sorted(o["box_xyxy"] for o in samples[1].meta["objects"])
    LE.evaluate_layer_samples(LE.pipeline_predictor(FakePipe(), "box", gt_order=True), samples[:1])
    assert orders[-1] == "given" and [p.boxes.tolist()[0] for p in seen[-1]] == [
        o["box_xyxy"] for o in samples[0].meta["objects"][::-1]]  # front-most first
