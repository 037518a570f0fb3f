"""Image loading (formats, bit depths, modes, EXIF, bad files) and layer-stack formats."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from layerkit.errors import InputImageError, OutputError
from layerkit.io.image import load_image, load_mask, save_image
from layerkit.types import Layer, LayerStack


@pytest.fixture
def rgb8():
    yy, xx = np.mgrid[:24, :32]
    return np.stack([xx * 7, yy * 9, (xx + yy) * 4], axis=2).astype(np.uint8)  # smooth: JPEG-friendly


@pytest.mark.parametrize("suffix, kwargs, atol", [
    (".png", {}, 0), (".webp", {"lossless": True}, 0), (".tif", {}, 0), (".bmp", {}, 0), (".jpg", {"quality": 100}, 8),
])
def test_load_formats(tmp_path, rgb8, suffix, kwargs, atol):
    p = tmp_path / f"img{suffix}"
    Image.fromarray(rgb8).save(p, **kwargs)
    img = load_image(p)
    assert img.dtype == np.float32 and img.shape == (24, 32, 3)
    assert np.abs(img * 255 - rgb8).max() <= atol + 0.51


def test_load_modes(tmp_path, rgb8):
    gray = rgb8[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (24, 32, 3) and np.allclose(g[..., 0], g[..., 2])
    g16 = (gray.astype(np.uint16) * 257)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    np.testing.assert_allclose(load_image(tmp_path / "g16.png")[..., 0], gray / 255.0, atol=1e-4)
    Image.fromarray(rgb8).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (24, 32, 3)
    rgba = np.dstack([rgb8, np.zeros_like(gray)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_allclose(load_image(tmp_path / "a.png"), 1.0)  # transparent → flattened on white
    Image.fromarray(rgb8).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    assert load_image(tmp_path / "c.jpg").shape == (24, 32, 3)


def test_exif_orientation(tmp_path, rgb8):
    im = Image.fromarray(rgb8)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    assert load_image(tmp_path / "o.jpg").shape == (32, 24, 3)


@pytest.mark.parametrize("make, match", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, not an image"), "not an image"),
])
def test_bad_files(tmp_path, make, match):
    p = tmp_path / "bad.png"
    make(p)
    with pytest.raises(InputImageError, match=match):
        load_image(p)


def test_truncated_file(tmp_path, rgb8):
    p = tmp_path / "t.png"
    Image.fromarray(np.tile(rgb8, (8, 8, 1))).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputImageError, match="truncated|cannot read"):
        load_image(p)


def test_too_small_and_bomb(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    with pytest.raises(InputImageError, match="at least"):
        load_image(tmp_path / "one.png")
    Image.new("L", (6000, 5000)).save(tmp_path / "big.png")  # 30 MP of zeros compresses to ~30 KB
    with pytest.raises(InputImageError, match="--max-pixels"):
        load_image(tmp_path / "big.png", max_pixels=10_000_000)


def test_load_mask_alpha_and_gray(tmp_path):
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:7] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png").sum() == 12
    Image.fromarray(np.dstack([np.zeros((10, 12, 3), np.uint8), m]), "RGBA").save(tmp_path / "ma.png")
    assert load_mask(tmp_path / "ma.png").sum() == 12


def test_save_image_atomic(tmp_path):
    save_image(np.zeros((4, 4, 3)), tmp_path / "x.png")
    with pytest.raises(OutputError, match="JPEG cannot store alpha"):
        save_image(np.zeros((4, 4, 4)), tmp_path / "y.jpg")
    assert not (tmp_path / "y.jpg").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def _stack(composite):
    bg = Layer.from_rgb(composite["bg"], name="background")
    fg = Layer.from_rgb(composite["fg"], composite["alpha"], name="disc")
    top = np.zeros(composite["image"].shape[:2] + (4,), np.float32)
    top[5:20, 5:30] = [0.1, 0.2, 0.9, 0.6]
    return LayerStack([bg, fg, Layer(top, name="blue patch")])


@pytest.mark.parametrize("name", ["out.psd", "out.ora", "outdir"])
def test_stack_roundtrip(tmp_path, composite, name):
    stack = _stack(composite)
    path = tmp_path / name
    stack.save(path)
    back = LayerStack.load(path)
    assert back.names == ["background", "disc", "blue patch"]
    np.testing.assert_allclose(back.composite(), stack.composite(), atol=3 / 255)
    for a, b in zip(back, stack):
        np.testing.assert_allclose(a.alpha, b.alpha, atol=0.5 / 255 + 1e-6)


def test_two_layer_folder_contract(tmp_path, composite):
    stack = LayerStack(_stack(composite).layers[:2])
    stack.save(tmp_path / "o")
    files = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert files == ["alpha.png", "background.png", "foreground.png", "layers.json"]
    assert Image.open(tmp_path / "o" / "background.png").mode == "RGB"
    assert Image.open(tmp_path / "o" / "foreground.png").mode == "RGBA"
    assert Image.open(tmp_path / "o" / "alpha.png").mode == "L"
    doc = json.loads((tmp_path / "o" / "layers.json").read_text())
    assert [m["name"] for m in doc["layers"]] == ["background", "disc"] and doc["order"] == "bottom-to-top"


def test_ora_is_valid(tmp_path, composite):
    _stack(composite).save(tmp_path / "s.ora")
    with zipfile.ZipFile(tmp_path / "s.ora") as z:
        first = z.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert z.read("mimetype") == b"image/openraster"
        names = z.namelist()
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= set(names)
        xml = z.read("stack.xml").decode()
        assert xml.index("blue patch") < xml.index('name="background"')  # topmost first


def test_psd_read_by_psd_tools(tmp_path, composite):
    from psd_tools import PSDImage

    _stack(composite).save(tmp_path / "s.psd")
    psd = PSDImage.open(tmp_path / "s.psd")
    assert [layer.name for layer in psd] == ["background", "disc", "blue patch"]


def test_save_refuses_existing_and_unknown(tmp_path, composite):
    stack = _stack(composite)
    stack.save(tmp_path / "s.psd")
    with pytest.raises(OutputError, match="already exists"):
        stack.save(tmp_path / "s.psd")
    stack.save(tmp_path / "s.psd", overwrite=True)
    with pytest.raises(OutputError, match="unknown layer-stack format"):
        stack.save(tmp_path / "s.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.psd"]
