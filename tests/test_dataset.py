"""``make-dataset``: determinism, GT consistency, prompts, occlusion control, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from layerkit.cli import main
from layerkit.errors import DataError
from layerkit.evaluation.dataset import find_layer_samples, label_from_name, make_dataset
from layerkit.types import LayerStack


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    """Four soft-edged RGBA objects and two textured backgrounds, made in code."""
    fg, bg = tmp_path / "fg", tmp_path / "bg"
    fg.mkdir()
    bg.mkdir()
    yy, xx = np.mgrid[:40, :48].astype(np.float32)
    for i, name in enumerate(["red_ball_01", "green_box_01", "blue_blob_01", "tall_thing_02"]):
        d = np.sqrt(((yy - 20) / (1 + 0.3 * i)) ** 2 + ((xx - 24) / (1.2 + 0.1 * i)) ** 2)
        a = np.clip((14 - d) / 2 + 0.5, 0, 1)
        rgb = np.zeros((40, 48, 3), np.float32)
        rgb[..., i % 3] = 0.9
        rgb[..., (i + 1) % 3] = xx / 48
        Image.fromarray((np.dstack([rgb, a]) * 255 + 0.5).astype(np.uint8), "RGBA").save(fg / f"{name}.png")
    for i in range(2):
        tex = np.stack([0.3 + 0.2 * np.sin(xx[:, :] / (3 + i)), 0.5 + 0 * xx, 0.4 + 0.1 * np.cos(yy / 4)], 2)
        tex = np.tile(tex, (2, 2, 1))[:72, :96]
        Image.fromarray((tex * 255).astype(np.uint8), "RGB").save(bg / f"bg_{i}.jpg")
    return fg, bg


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_deterministic_by_seed(sources: tuple[Path, Path], tmp_path: Path) -> None:
    fg, bg = sources
    a = make_dataset(fg, bg, tmp_path / "a", n=3, objects=(2, 3), seed=5, occlusion=(0.0, 0.6), cover=(0.08, 0.2))
    b = make_dataset(fg, bg, tmp_path / "b", n=3, objects=(2, 3), seed=5, occlusion=(0.0, 0.6), cover=(0.08, 0.2))
    c = make_dataset(fg, bg, tmp_path / "c", n=3, objects=(2, 3), seed=6, occlusion=(0.0, 0.6), cover=(0.08, 0.2))
    ta, tb, tc = _tree(a), _tree(b), _tree(c)
    ta.pop("index.json"), tb.pop("index.json"), tc.pop("index.json")  # holds the folder paths
    assert ta == tb
    assert ta != tc


def test_ground_truth_is_consistent(sources: tuple[Path, Path], tmp_path: Path) -> None:
    fg, bg = sources
    out = make_dataset(fg, bg, tmp_path / "multi", n=3, objects=(2, 3), seed=0, occlusion=(0.05, 0.6), cover=(0.08, 0.2))
    index = json.loads((out / "index.json").read_text())
    assert index["format"] == "layerkit.multilayer/1" and len(index["samples"]) == 3
    samples = find_layer_samples(out)
    assert [s.id for s in samples] == ["0000", "0001", "0002"]
    for s in samples:
        stack = s.ground_truth()
        objs = s.meta["objects"]
        assert len(stack) == len(objs) + 1 and 2 <= len(objs) <= 3
        assert stack[0].name == "background" and np.all(stack[0].alpha == 1.0)
        composite = np.asarray(Image.open(s.path / "composite.png"), np.float32) / 255
        assert np.abs(stack.composite() - composite).max() <= 0.5 / 255 + 1e-6
        h, w = stack.size
        for o in objs:
            assert stack[o["layer"]].name == o["label"]
            x0, y0, x1, y1 = o["box_xyxy"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            px, py = o["point_xy"]
            assert x0 <= px < x1 and y0 <= py < y1
            assert stack[o["layer"]].alpha[py, px] > 0.5
        assert [o["occlusion"] for o in objs][-1] == 0.0           # nothing above the top object
        assert all(o["occlusion"] <= 0.6 + 1e-3 for o in objs)
        assert objs[-2]["occlusion"] >= 0.05 - 1e-3                # the one just below the top is occluded
        prompts = s.prompts("box+point")
        assert len(prompts) == len(objs) and prompts[0].boxes is not None and prompts[0].points is not None


def test_label_from_name() -> None:
    assert label_from_name("white_cow_01.png") == "white cow"
    assert label_from_name("/x/y/hot_dog_clipart_12.png") == "hot dog clipart"
    assert label_from_name("tree.png") == "tree"


def test_bad_inputs(sources: tuple[Path, Path], tmp_path: Path) -> None:
    fg, bg = sources
    with pytest.raises(DataError, match="2..6"):
        make_dataset(fg, bg, tmp_path / "x", objects=(2, 7))
    with pytest.raises(DataError, match="distinct objects"):
        make_dataset(fg, bg, tmp_path / "x", objects=(5, 5))
    with pytest.raises(DataError, match="does not exist"):
        make_dataset(tmp_path / "nope", bg, tmp_path / "x")
    with pytest.raises(DataError, match="occlusion"):
        make_dataset(fg, bg, tmp_path / "x", occlusion=(0.5, 0.2))
    with pytest.raises(DataError, match="no placement"):  # every object over half hidden, with tiny objects
        make_dataset(fg, bg, tmp_path / "x", n=1, objects=(3, 3), occlusion=(0.95, 0.99), cover=(0.01, 0.01),
                     tries=5, restarts=2)
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_find_layer_samples_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        find_layer_samples(tmp_path / "missing")
    with pytest.raises(DataError, match="no sample"):
        find_layer_samples(tmp_path)
    (tmp_path / "0000").mkdir()
    (tmp_path / "0000" / "prompts.json").write_text("{}")
    with pytest.raises(DataError, match="missing composite.png"):
        find_layer_samples(tmp_path)


def test_cli(sources: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fg, bg = sources
    out = tmp_path / "multi"
    args = ["make-dataset", "--fg-dir", str(fg), "--bg-dir", str(bg), "--objects", "2-3", "--n", "2",
            "--occlusion", "0,0.6", "--cover", "0.08,0.2", "-o", str(out)]
    assert main(args) == 0
    assert isinstance(LayerStack.load(out / "0001" / "layers"), LayerStack)
    capsys.readouterr()
    assert main(args) == 2  # exists, no --overwrite
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert main([*args[:-2], "--objects", "9", "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    assert main([*args[:-2], "--objects", "two", "-o", str(tmp_path / "bad")]) == 2
    assert "--objects" in capsys.readouterr().err
