"""Hostile input, documents: layers.json / ORA stack.xml / PSD read as data from anywhere.

Paths stay inside the document, canvases and layer counts are bounded before allocation, XML
entities are refused, malformed documents give one :class:`InputImageError`, and layer names
(Unicode, long, control characters) survive every format as far as it allows. Property-based
with hypothesis: random mutations of a valid layers.json and stack.xml.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from layerkit.cli import main
from layerkit.errors import InputImageError
from layerkit.io.document import MAX_LAYERS, clean_name
from layerkit.io.layers import load_stack, save_stack
from layerkit.types import Layer, LayerStack

HSET = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def small_stack(names: tuple[str, str] = ("background", "object"), size: int = 16) -> LayerStack:
    a = np.zeros((size, size), np.float32)
    a[3:9, 4:12] = 1.0
    rgb = np.random.default_rng(0).random((size, size, 3)).astype(np.float32)
    return LayerStack([Layer.from_rgb(rgb, name=names[0]), Layer.from_rgb(rgb[::-1].copy(), a, name=names[1])])


# ------------------------------------------------------------------ layers.json paths
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "nested-dotdot"])
def test_layers_json_paths_stay_inside(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture) -> None:
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(secret)
    d = tmp_path / "stack"
    save_stack(small_stack(), d)
    doc = json.loads((d / "layers.json").read_text())
    if kind == "absolute":
        doc["layers"][1]["file"] = str(secret)
    elif kind == "dotdot":
        doc["layers"][1]["file"] = "../secret.png"
    elif kind == "nested-dotdot":
        (d / "sub").mkdir()
        doc["layers"][1]["file"] = "sub/../../secret.png"
    else:
        (d / "link.png").symlink_to(secret)
        doc["layers"][1]["file"] = "link.png"
    (d / "layers.json").write_text(json.dumps(doc))
    with pytest.raises(InputImageError, match="absolute path|outside the document"):
        load_stack(d)
    assert main(["edit", str(d), "--move", "1:1,0", "-o", str(tmp_path / "e.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "document" in err[0] and not (tmp_path / "e.png").exists()


def test_corrupt_layers_json_is_one_error(tmp_path: Path) -> None:
    d = tmp_path / "stack"
    save_stack(small_stack(), d)
    for text in ("{not json", "[]", '{"layers": 3}', '{"layers": []}', '{"layers": [1]}', '{"layers": [{"file": 7}]}',
                 '{"layers": [{"file": "nope.png"}]}', '{"layers": [{"file": "layers.json"}]}', "\xff\xfe"):
        (d / "layers.json").write_text(text, encoding="latin-1")
        with pytest.raises(InputImageError):
            load_stack(d)


def _mutations() -> st.SearchStrategy:
    junk = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                     st.text(max_size=30), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
                     st.sampled_from(["/etc/passwd", "../x.png", "..", ".", "", "background.png", "layers.json", "a\x00b"]))
    key = st.sampled_from(["file", "name", "visible", "index", "bbox", "alpha_file", "prompt"])
    return st.lists(st.tuples(st.integers(0, 2), key, junk), min_size=1, max_size=4)


@HSET
@given(muts=_mutations(), top=st.one_of(st.none(), st.sampled_from(["width", "height", "format", "layers"])))
def test_layers_json_mutations_load_or_refuse(tmp_path_factory: pytest.TempPathFactory, muts: list, top: str | None) -> None:
    d = tmp_path_factory.mktemp("mut") / "stack"
    save_stack(small_stack(), d)
    doc = json.loads((d / "layers.json").read_text())
    for i, key, value in muts:
        if i < len(doc["layers"]):
            doc["layers"][i][key] = value
    if top:
        doc[top] = None
    (d / "layers.json").write_text(json.dumps(doc))
    try:
        stack = load_stack(d)
    except InputImageError as e:
        assert "\n" not in str(e) and len(str(e)) < 400
        return
    assert len(stack) == 2 and stack.size == (16, 16)  # what loads is complete and inside the folder
    for layer in stack:
        assert isinstance(layer.name, str) and layer.name and np.isfinite(layer.rgba).all()


def test_folder_layer_count_and_size_limits(tmp_path: Path) -> None:
    d = tmp_path / "stack"
    save_stack(small_stack(), d)
    doc = json.loads((d / "layers.json").read_text())
    doc["layers"] = [doc["layers"][0]] * (MAX_LAYERS + 1)
    (d / "layers.json").write_text(json.dumps(doc))
    with pytest.raises(InputImageError, match=f"at most {MAX_LAYERS}"):
        load_stack(d)
    save_stack(small_stack(), tmp_path / "s2")
    with pytest.raises(InputImageError, match="over the limit"):
        load_stack(tmp_path / "s2", max_pixels=100)


# ------------------------------------------------------------------ ORA
def ora_bytes(xml: str, members: dict[str, bytes] | None = None, mimetype: bytes = b"image/openraster") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mimetype", mimetype)
        z.writestr("stack.xml", xml)
        for k, v in (members or {}).items():
            z.writestr(k, v)
    return buf.getvalue()


def png(w: int = 8, h: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 4), 255, np.uint8), "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def layer_xml(w: object = 16, h: object = 16, x: object = 0, y: object = 0, src: str = "data/a.png", extra: str = "") -> str:
    return (f'<?xml version="1.0"?>{extra}<image w="{w}" h="{h}"><stack>'
            f'<layer name="a" src="{src}" x="{x}" y="{y}"/></stack></image>')


@pytest.mark.parametrize("xml,match", [
    (layer_xml(w="abc"), "canvas width must be an integer"),
    (layer_xml(h="1e400"), "canvas height must be an integer"),
    (layer_xml(w=200000, h=200000), "over the limit"),
    (layer_xml(w=0), "at least 1 px"),
    (layer_xml(x="nan"), "x must be an integer"),
    (layer_xml(src="../../../../etc/passwd"), "has no '../../../../etc/passwd'"),
    (layer_xml(src="/etc/passwd"), "has no '/etc/passwd'"),
    ('<?xml version="1.0"?><image w="16" h="16"><stack/></image>', "no layers"),
    ("<image", "not valid XML"),
    ("<svg/>", "expected <image>"),
])
def test_ora_bad_documents(tmp_path: Path, xml: str, match: str) -> None:
    p = tmp_path / "bad.ora"
    p.write_bytes(ora_bytes(xml, {"data/a.png": png()}))
    with pytest.raises(InputImageError, match=match):
        load_stack(p)


def test_ora_entity_bomb_refused_with_short_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ents = '<!ENTITY a "' + "x" * 1000 + '">'
    ents += "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefg", "bcdefgh"))  # 10^7 × 1000 chars
    xml = (f'<?xml version="1.0"?><!DOCTYPE image [{ents}]><image w="16" h="16"><stack>'
           '<layer name="&h;" src="data/a.png"/></stack></image>')
    p = tmp_path / "bomb.ora"
    p.write_bytes(ora_bytes(xml, {"data/a.png": png()}))
    with pytest.raises(InputImageError, match="DTD or entities"):
        load_stack(p)
    assert main(["edit", str(p), "--hide", "0", "-o", str(tmp_path / "o.ora")]) == 2
    err = capsys.readouterr().err
    assert len(err) < 300 and err.count("\n") == 1


def test_ora_offsets_off_canvas_are_clipped(tmp_path: Path) -> None:
    p = tmp_path / "off.ora"
    xml = ('<?xml version="1.0"?><image w="16" h="16"><stack>'
           '<layer name="far" src="data/a.png" x="1000000" y="-5"/><layer name="neg" src="data/a.png" x="-4" y="-4"/>'
           '</stack></image>')
    p.write_bytes(ora_bytes(xml, {"data/a.png": png()}))
    stack = load_stack(p)
    assert stack.names == ["neg", "far"] and stack.size == (16, 16)
    assert stack[0].alpha[:4, :4].all() and not stack[0].alpha[4:, :].any() and not stack[1].alpha.any()


def test_ora_member_size_and_image_bomb(tmp_path: Path) -> None:
    p = tmp_path / "big.ora"
    p.write_bytes(ora_bytes(layer_xml(w=8, h=8), {"data/a.png": png(400, 400)}))
    with pytest.raises(InputImageError, match="over the limit|far larger"):
        load_stack(p)
    p.write_bytes(ora_bytes(layer_xml(), {"data/a.png": b"\x89PNG not really"}))
    with pytest.raises(InputImageError, match="not a readable image"):
        load_stack(p)
    p.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(InputImageError):
        load_stack(p)


@HSET
@given(attr=st.sampled_from(["w", "h", "x", "y", "src", "name", "visibility", "opacity"]),
       value=st.one_of(st.text(max_size=20), st.integers(-10**9, 10**9).map(str), st.floats().map(str)))
def test_ora_attribute_mutations_load_or_refuse(tmp_path_factory: pytest.TempPathFactory, attr: str, value: str) -> None:
    from xml.etree import ElementTree as ET

    p = tmp_path_factory.mktemp("ora") / "m.ora"
    save_stack(small_stack(), p)
    with zipfile.ZipFile(p) as z:
        members = {n: z.read(n) for n in z.namelist() if n not in ("mimetype", "stack.xml")}
        root = ET.fromstring(z.read("stack.xml"))
    el = root if attr in ("w", "h") else root.find("stack").findall("layer")[0]  # type: ignore[union-attr]
    el.set(attr, value)
    p.write_bytes(ora_bytes(ET.tostring(root, encoding="unicode"), members))
    try:
        stack = load_stack(p, max_pixels=10**6)
    except InputImageError as e:
        assert "\n" not in str(e) and len(str(e)) < 400
        return
    h, w = stack.size  # type: ignore[misc]
    assert h * w <= 10**6 and len(stack) == 2


# ------------------------------------------------------------------ PSD and names
@pytest.mark.parametrize("suffix", [".psd", ".ora", ""])
def test_unicode_and_long_layer_names(tmp_path: Path, suffix: str) -> None:
    long = "宇航员😀" + "n" * 400
    p = tmp_path / f"names{suffix}"
    save_stack(small_stack(("宇航员😀", long)), p)
    names = load_stack(p).names
    assert names[0] == "宇航员😀" and names[1] == long[:255]


@HSET
@given(name=st.text(max_size=300))
def test_any_layer_name_round_trips_cleaned(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    d = tmp_path_factory.mktemp("n")
    expected = clean_name(name)
    assert 1 <= len(expected) <= 255
    for suffix in (".psd", ".ora", ""):
        p = d / f"s{suffix}"
        save_stack(small_stack(("bg", name)), p, overwrite=True)
        assert load_stack(p).names[1] == expected, suffix


def test_psd_canvas_limit_and_garbage(tmp_path: Path) -> None:
    p = tmp_path / "s.psd"
    save_stack(small_stack(size=64), p)
    with pytest.raises(InputImageError, match="over the limit"):
        load_stack(p, max_pixels=1000)
    (tmp_path / "g.psd").write_bytes(b"8BPS" + b"\x00" * 40)
    with pytest.raises(InputImageError, match="not a readable PSD"):
        load_stack(tmp_path / "g.psd")


def test_pipes_are_refused_not_read(tmp_path: Path) -> None:
    import os

    for name in ("p.ora", "p.psd", "p.png"):
        os.mkfifo(tmp_path / name)
    for name in ("p.ora", "p.psd"):
        with pytest.raises(InputImageError, match="not a regular file"):
            load_stack(tmp_path / name)
    from layerkit.io.image import load_image

    with pytest.raises(InputImageError, match="not a regular file"):
        load_image(tmp_path / "p.png")
    d = tmp_path / "stack"
    save_stack(small_stack(), d)
    os.mkfifo(d / "pipe.png")
    doc = json.loads((d / "layers.json").read_text())
    doc["layers"][1]["file"] = "pipe.png"
    (d / "layers.json").write_text(json.dumps(doc))
    with pytest.raises(InputImageError, match="not a file"):
        load_stack(d)
