"""The ``layerkit`` command line: decompose, help, and every bad input → one line, exit 2, no output."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from layerkit.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def box_arg(comp):
    return ",".join(str(int(v)) for v in comp["box"])


def test_help_lists_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["decompose", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "layerkit decompose photo.jpg --box" in out and "--overwrite" in out and "--max-pixels" in out


def test_decompose_folder(capsys, tmp_path, image_file, composite):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "decompose", image_file, "--box", box_arg(composite), "-o", out_dir, "--quiet")
    assert code == 0, err
    assert out.strip() == str(out_dir)
    assert sorted(os.listdir(out_dir)) == ["alpha.png", "background.png", "foreground.png", "layers.json"]
    alpha = np.asarray(Image.open(out_dir / "alpha.png"), np.float32) / 255
    iou = np.minimum(alpha, composite["alpha"]).sum() / np.maximum(alpha, composite["alpha"]).sum()
    assert iou > 0.9
    meta = json.loads((out_dir / "layers.json").read_text())
    assert meta["layers"][1]["prompt"]["boxes"][0] == [float(v) for v in composite["box"]]


def test_decompose_psd_with_points_and_overrides(capsys, tmp_path, image_file):
    out = tmp_path / "o.psd"
    code, _, err = run(capsys, "decompose", image_file, "--point", "64,48", "--point", "3,3,0", "-o", out,
                       "--set", "trimapper.band=6", "--seed", "1", "--device", "cpu", "--quiet")
    assert code == 0, err
    from layerkit.types import LayerStack

    assert LayerStack.load(out).names == ["background", "object"]


def test_existing_output_needs_overwrite(capsys, tmp_path, image_file, composite):
    out = tmp_path / "o.ora"
    out.write_text("precious")
    code, _, err = run(capsys, "decompose", image_file, "--box", box_arg(composite), "-o", out)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert out.read_text() == "precious"
    code, _, err = run(capsys, "decompose", image_file, "--box", box_arg(composite), "-o", out, "--overwrite", "--quiet")
    assert code == 0, err
    assert out.read_bytes()[:4] == b"PK\x03\x04"


def _bad_inputs(tmp_path, image_file, composite):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    trunc = tmp_path / "trunc.png"
    Image.fromarray((np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8)).save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:3000])
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    bomb = tmp_path / "bomb.png"
    Image.new("L", (4000, 3000)).save(bomb)
    wrong_mask = tmp_path / "wrong_mask.png"
    Image.new("L", (10, 10), 255).save(wrong_mask)
    empty_mask = tmp_path / "empty_mask.png"
    Image.new("L", (128, 96), 0).save(empty_mask)
    b = box_arg(composite)
    return [
        (["missing.png", "--box", b], "does not exist"),
        ([text, "--box", b], "not an image"),
        ([empty, "--box", b], "empty (0-byte)"),
        ([trunc, "--box", b], "truncated or corrupt"),
        ([tiny, "--box", "0,0,1,1"], "at least 8 px"),
        ([bomb, "--box", "0,0,10,10", "--max-pixels", "1000000"], "decompression-bomb guard"),
        ([image_file, "--box", "100,10,500,50"], "outside the 128x96 image"),
        ([image_file, "--box", "50,40,20,60"], "inverted or has zero area"),
        ([image_file, "--box", "20,40,20,60"], "inverted or has zero area"),
        ([image_file, "--box", "1,2,3"], "expected X0,Y0,X1,Y1"),
        ([image_file, "--point", "500,20"], "outside the 128x96 image"),
        ([image_file, "--point", "5,5,7"], "label must be 0 or 1"),
        ([image_file, "--mask", wrong_mask], "mask is 10x10 but the image is 128x96"),
        ([image_file, "--mask", empty_mask], "mask is empty"),
        ([image_file, "--text", "the red disc"], "needs a grounding stage"),
        ([image_file], "no prompt given"),
        ([image_file, "--box", b, "--set", "matter.bandwidth=3"], "unknown key 'matter.bandwidth'"),
        ([image_file, "--box", b, "--set", "matter.backend=magic"], "unknown matter backend 'magic'"),
        ([image_file, "--box", b, "--config", "nope"], "unknown pipeline config 'nope'"),
        ([image_file, "--box", b, "--set", "matterband"], "must look like key.sub=value"),
    ]


def test_bad_inputs_exit_2_one_line_no_output(capsys, tmp_path, image_file, composite):
    for i, (args, expected) in enumerate(_bad_inputs(tmp_path, image_file, composite)):
        out = tmp_path / f"out{i}"
        code, stdout, err = run(capsys, "decompose", *args, "-o", out, "--quiet")  # a slow stage's bar is stderr too
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("layerkit: error: "), (args, err)
        assert expected in lines[0], (args, lines[0])
        assert not out.exists(), args
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".out{i}")], args


def test_unwritable_output(capsys, tmp_path, image_file, composite):
    if os.geteuid() == 0:  # root ignores permissions: use a path under a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "sub" / "out"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "out"
    code, _, err = run(capsys, "decompose", image_file, "--box", box_arg(composite), "-o", target)
    assert code == 2 and ("cannot create output folder" in err or "not writable" in err)
    assert not target.exists()
