"""``layerkit layers`` and ``scripts/decompose_layers.py`` (with the oracle pipeline in place of a real one)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_sequential import OraclePipe, make_scene

from layerkit.cli import main
from layerkit.cli.layers import objects_from_items, prompts_from_records, read_prompt_file
from layerkit.errors import PromptError
from layerkit.types import LayerStack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scene_file(tmp_path) -> tuple[dict, Path]:
    s = make_scene()
    p = tmp_path / "scene.png"
    Image.fromarray((s["image"] * 255 + 0.5).astype(np.uint8)).save(p)
    return s, p


@pytest.fixture
def oracle(monkeypatch, scene_file):
    pipe = OraclePipe(scene_file[0]["gt"])
    monkeypatch.setattr("layerkit.cli.common.build_pipeline", lambda args: pipe)  # every command looks it up at call time
    return pipe


def _box(b) -> str:
    return ",".join(str(v) for v in b)


def test_each_flag_is_an_object_unless_grouped():
    items = [("box", "1,2,30,40"), ("text", "the lamp"), ("object", []), ("box", "5,5,20,20"), ("point", "10,10"),
             ("point", "2,2,0"), ("object", []), ("mask", "m.png")]
    objs = objects_from_items(items)
    assert objs == [{"boxes": [[1, 2, 30, 40]]}, {"text": "the lamp"},
                    {"boxes": [[5, 5, 20, 20]], "points": [[10, 10], [2, 2]], "labels": [1, 0]}, {"mask": "m.png"}]
    with pytest.raises(PromptError, match="only negative points"):
        objects_from_items([("point", "3,3,0")])
    with pytest.raises(PromptError, match="group 0 is empty"):
        objects_from_items([("object", []), ("object", []), ("box", "1,1,5,5")])
    with pytest.raises(PromptError, match="one --text"):
        objects_from_items([("object", []), ("text", "a"), ("text", "b")])


def test_prompt_records_and_files(tmp_path):
    prompts, names = prompts_from_records([{"box": [1, 2, 10, 12], "name": "cup"}, {"points": [[4, 4], [1, 1]], "labels": [1, 0]},
                                           {"text": "lamp"}])
    assert names == ["cup", "object_2", "lamp"] and prompts[1].labels.tolist() == [1, 0]
    with pytest.raises(PromptError, match="unknown keys"):
        prompts_from_records([{"bbox": [1, 2, 3, 4]}])
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"objects": [{"box": [1, 2, 10, 12]}]}))
    assert read_prompt_file(f) == [{"box": [1, 2, 10, 12]}]
    f.write_text("{not json")
    with pytest.raises(PromptError, match="cannot read"):
        read_prompt_file(f)


def test_layers_cli_writes_the_stack(oracle, scene_file, tmp_path, capsys):
    s, img = scene_file
    out = tmp_path / "stack"
    b = s["boxes"]
    rc = main(["layers", str(img), "--box", _box(b[2]), "--box", _box(b[0]), "--object", "--box", _box(b[1]), "--point", "72,28",
               "-o", str(out)])
    assert rc == 0
    stack = LayerStack.load(out)
    assert len(stack) == 4 and (out / "layer_03.png").is_file()
    report = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert report["recompose_psnr_db"] >= 40 and report["order_front_to_back"] == [0, 2, 1]


def test_layers_cli_reports_empty_objects_and_goes_on(oracle, scene_file, tmp_path, capsys):
    s, img = scene_file
    out = tmp_path / "stack.psd"
    rc = main(["layers", str(img), "--box", _box(s["boxes"][0]), "--box", "100,2,118,14", "--merge", "0-1", "-o", str(out)])
    assert rc == 0 and len(LayerStack.load(out)) == 1
    assert "object 1 (object_2) is empty" in capsys.readouterr().err


def test_layers_cli_bad_input_exits_2_without_output(oracle, scene_file, tmp_path, capsys):
    s, img = scene_file
    out = tmp_path / "stack"
    boxes = [a for b in s["boxes"] for a in ("--box", _box(b))]
    cases = [
        ([], "no object given"),
        (["--auto", "--box", _box(s["boxes"][0])], "drop --auto"),
        (boxes + ["--max-layers", "3"], "max_layers=3 allows 2"),
        (["--box", "100,2,118,14"], "no object was found"),
        (["--box", _box(s["boxes"][0]), "--order", "x,y"], "--order"),
        (["--box", _box(s["boxes"][0]), "--merge", "1"], "FIRST-LAST"),
        (["--box", "1,2,3"], "--box"),
        (["--box", _box(s["boxes"][0]), "--max-layers", "30"], "2..20"),
        (["--point", "5,5", "--multilayer", "/nowhere"], "add --auto"),
    ]
    for extra, msg in cases:
        assert main(["layers", str(img), *extra, "-o", str(out)]) == 2, extra
        assert msg in capsys.readouterr().err
        assert not out.exists()


def test_layers_cli_auto(oracle, scene_file, tmp_path):
    out = tmp_path / "auto.ora"
    assert main(["layers", str(scene_file[1]), "--auto", "--max-layers", "3", "-o", str(out), "--quiet"]) == 0
    assert len(LayerStack.load(out)) == 3


def _script():
    spec = importlib.util.spec_from_file_location("decompose_layers_script", ROOT / "scripts" / "decompose_layers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_batch_script_is_resumable_and_survives_failures(oracle, scene_file, tmp_path, capsys):
    s, img = scene_file
    src = tmp_path / "images"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / f"{name}.png").write_bytes(img.read_bytes())
    (src / "notes.txt").write_text("not an image")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(r) for r in [
        {"image": "a", "objects": [{"box": list(b)} for b in s["boxes"]]},
        {"image": "b.png", "objects": [{"box": [0, 0, 500, 10]}]},  # outside the image: fails, logged
    ]) + "\n")
    out = tmp_path / "out"
    script = _script()
    rc = script.main([str(src), "--prompts", str(prompts), "--auto", "--max-layers", "4", "-o", str(out)])
    assert rc == 1
    assert len(LayerStack.load(out / "a")) == 4 and len(LayerStack.load(out / "c")) == 4  # c: no prompts, --auto
    assert not (out / "b").exists()
    fails = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["id"] for f in fails] == ["b"] and "outside" in fails[0]["error"]
    rep = json.loads((out / "reports" / "a.json").read_text())
    assert rep["recompose_psnr_db"] >= 40 and len(rep["objects"]) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == 2 and summary["failed"] == 1
    calls = oracle.calls
    rc = script.main([str(src), "--prompts", str(prompts), "--auto", "-o", str(out), "--format", "folder"])
    assert rc == 1 and oracle.calls == calls  # a and c are done: only b is tried again (and fails before any call)
    assert json.loads((out / "summary.json").read_text())["skipped_done_before"] == 2
    rc = script.main([str(src), "-o", str(tmp_path / "psd"), "--format", "psd", "--limit", "1"])
    assert rc == 1 and "no prompts for this image" in (tmp_path / "psd" / "failures.jsonl").read_text()


def test_multilayer_commands_default_to_the_peel_overlay(monkeypatch, scene_file, tmp_path):
    """``layers`` builds ``classical+peel`` unless told otherwise; ``decompose`` keeps ``classical``."""
    seen = []

    def fake_build(args, spec=None, check_weights=True):
        seen.append(args.config)
        raise SystemExit(0)

    monkeypatch.setattr("layerkit.cli.common.build_pipeline", fake_build)
    for argv in (["layers", str(scene_file[1]), "--box", "1,1,20,20", "-o", str(tmp_path / "a")],
                 ["layers", str(scene_file[1]), "--box", "1,1,20,20", "-o", str(tmp_path / "b"), "--config", "classical"],
                 ["decompose", str(scene_file[1]), "--box", "1,1,20,20", "-o", str(tmp_path / "c")]):
        with pytest.raises(SystemExit):
            main(argv)
    assert seen == ["classical+peel", "classical", "classical"]
