"""Writing and reading a :class:`~layerkit.types.LayerStack`: PNG folder, OpenRaster, PSD.

The format follows the path's suffix: ``.psd``, ``.ora``, otherwise a folder. Every writer is
atomic (see :mod:`layerkit.io.atomic`). Layers are 8-bit straight RGBA in every format; object
layers are stored cropped to their alpha bounding box with an offset where the format allows.

Folder layout (the ``layerkit decompose`` contract): a two-layer stack gives ``background.png``
(RGB), ``foreground.png`` (RGBA, canvas size), ``alpha.png`` (L) and ``layers.json``; a deeper
stack gives ``layer_00.png`` (background) … ``layer_NN.png`` (top) and ``layers.json``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image

from layerkit.errors import InputImageError, OutputError
from layerkit.io.atomic import atomic_path
from layerkit.io.image import to_pil, to_uint8
from layerkit.types import Layer, LayerStack

LAYERS_JSON = "layers.json"
FORMAT_TAG = "layerkit.layers/1"


def save_stack(stack: LayerStack, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``stack`` to ``path`` (``.psd``, ``.ora`` or folder); returns the path."""
    if not len(stack):
        raise OutputError("cannot save an empty LayerStack")
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".psd":
        writer, directory = _write_psd, False
    elif suffix == ".ora":
        writer, directory = _write_ora, False
    elif suffix in ("", ".layers") or p.is_dir():
        writer, directory = _write_folder, True
    else:
        raise OutputError(f"unknown layer-stack format {suffix!r} for {str(p)!r}; use .psd, .ora or a folder path without suffix")
    with atomic_path(p, overwrite=overwrite, directory=directory) as tmp:
        writer(stack, tmp)
    return p


def load_stack(path: str | os.PathLike) -> LayerStack:
    """Read a stack written by :func:`save_stack`."""
    p = Path(path)
    if not p.exists():
        raise InputImageError(f"layer stack {str(p)!r} does not exist")
    if p.is_dir():
        return _read_folder(p)
    suffix = p.suffix.lower()
    if suffix == ".psd":
        return _read_psd(p)
    if suffix == ".ora":
        return _read_ora(p)
    raise InputImageError(f"unknown layer-stack format {suffix!r}; expected .psd, .ora or a folder with layers.json")


def _layer_meta(layer: Layer, index: int) -> dict:
    return {"index": index, "name": layer.name, "visible": layer.visible,
            "bbox": list(layer.bbox) if layer.bbox else None,
            "prompt": layer.prompt.to_dict() if layer.prompt is not None else None}


# ----------------------------------------------------------------------------- folder
def _write_folder(stack: LayerStack, d: Path) -> None:
    h, w = stack.size  # type: ignore[misc]
    entries = []
    two = len(stack) == 2
    for i, layer in enumerate(stack):
        meta = _layer_meta(layer, i)
        if two and i == 0:
            meta["file"] = "background.png"
            to_pil(layer.rgb).save(d / meta["file"])
        elif two and i == 1:
            meta["file"] = "foreground.png"
            meta["alpha_file"] = "alpha.png"
            to_pil(layer.rgba).save(d / meta["file"])
            to_pil(layer.alpha).save(d / meta["alpha_file"])
        else:
            meta["file"] = f"layer_{i:02d}.png"
            to_pil(layer.rgb if i == 0 and _opaque(layer) else layer.rgba).save(d / meta["file"])
        entries.append(meta)
    doc = {"format": FORMAT_TAG, "width": w, "height": h, "order": "bottom-to-top", "layers": entries}
    (d / LAYERS_JSON).write_text(json.dumps(doc, indent=1))


def _read_folder(d: Path) -> LayerStack:
    meta_path = d / LAYERS_JSON
    if not meta_path.exists():
        raise InputImageError(f"{str(d)!r} has no {LAYERS_JSON}; it is not a layer folder written by layerkit")
    doc = json.loads(meta_path.read_text())
    layers = []
    for m in doc["layers"]:
        with Image.open(d / m["file"]) as im:
            arr = np.asarray(im.convert("RGBA"), np.float32) / 255.0
        layers.append(Layer(arr, name=m["name"], visible=m.get("visible", True)))
    return LayerStack(layers)


def _opaque(layer: Layer) -> bool:
    return bool(np.all(layer.alpha >= 1.0))


# ----------------------------------------------------------------------------- OpenRaster
def _crop(layer: Layer) -> tuple[np.ndarray, int, int]:
    """Layer RGBA cropped to its 8-bit alpha bbox, with its (x, y) offset."""
    u8 = to_uint8(layer.rgba)
    ys, xs = np.nonzero(u8[..., 3])
    if ys.size == 0:
        return u8[:1, :1], 0, 0
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return u8[y0:y1, x0:x1], int(x0), int(y0)


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _write_ora(stack: LayerStack, path: Path) -> None:
    h, w = stack.size  # type: ignore[misc]
    root = ET.Element("image", {"version": "0.0.3", "w": str(w), "h": str(h)})
    st = ET.SubElement(root, "stack")
    files: list[tuple[str, bytes]] = []
    for i, layer in enumerate(stack):
        u8, x, y = _crop(layer)
        src = f"data/layer_{i:02d}.png"
        files.append((src, _png_bytes(Image.fromarray(u8, "RGBA"))))
        # stack.xml lists the topmost layer first
        st.insert(0, ET.Element("layer", {"name": layer.name, "src": src, "x": str(x), "y": str(y), "opacity": "1.0",
                                          "visibility": "visible" if layer.visible else "hidden",
                                          "composite-op": "svg:src-over"}))
    merged = to_pil(stack.composite())
    thumb = merged.copy()
    thumb.thumbnail((256, 256))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "image/openraster", compress_type=zipfile.ZIP_STORED)
        z.writestr("stack.xml", ET.tostring(root, encoding="unicode", xml_declaration=True), compress_type=zipfile.ZIP_DEFLATED)
        for src, data in files:
            z.writestr(src, data, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("mergedimage.png", _png_bytes(merged), compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("Thumbnails/thumbnail.png", _png_bytes(thumb), compress_type=zipfile.ZIP_DEFLATED)


def _read_ora(path: Path) -> LayerStack:
    try:
        with zipfile.ZipFile(path) as z:
            if z.read("mimetype") != b"image/openraster":
                raise InputImageError(f"{str(path)!r} is not an OpenRaster file (bad mimetype)")
            root = ET.fromstring(z.read("stack.xml"))
            w, h = int(root.get("w")), int(root.get("h"))  # type: ignore[arg-type]
            layers = []
            for el in reversed(root.find("stack").findall("layer")):  # type: ignore[union-attr]
                with Image.open(io.BytesIO(z.read(el.get("src")))) as im:  # type: ignore[arg-type]
                    part = np.asarray(im.convert("RGBA"), np.float32) / 255.0
                canvas = np.zeros((h, w, 4), np.float32)
                x, y = int(el.get("x", 0)), int(el.get("y", 0))
                canvas[y:y + part.shape[0], x:x + part.shape[1]] = part
                layers.append(Layer(canvas, name=el.get("name", "layer"), visible=el.get("visibility", "visible") != "hidden"))
    except (zipfile.BadZipFile, KeyError) as e:
        raise InputImageError(f"{str(path)!r} is not a valid OpenRaster file: {e}") from None
    return LayerStack(layers)


# ----------------------------------------------------------------------------- PSD
def _write_psd(stack: LayerStack, path: Path) -> None:
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer

    h, w = stack.size  # type: ignore[misc]
    psd = PSDImage.new("RGBA", (w, h))
    for layer in stack:  # psd-tools appends bottom → top
        u8, x, y = _crop(layer)
        px = PixelLayer.frompil(Image.fromarray(u8, "RGBA"), psd, name=layer.name, top=y, left=x)
        px.visible = layer.visible
    psd.save(path)


def _read_psd(path: Path) -> LayerStack:
    from psd_tools import PSDImage

    try:
        psd = PSDImage.open(path)
    except Exception as e:  # psd-tools raises many types on bad files
        raise InputImageError(f"{str(path)!r} is not a readable PSD file: {e}") from None
    w, h = psd.width, psd.height
    layers = []
    for pl in psd:  # bottom → top
        canvas = np.zeros((h, w, 4), np.float32)
        arr = pl.numpy()
        if arr is not None:
            if arr.shape[2] == 3:
                arr = np.concatenate([arr, np.ones(arr.shape[:2] + (1,), arr.dtype)], axis=2)
            x0, y0 = pl.left, pl.top
            canvas[y0:y0 + arr.shape[0], x0:x0 + arr.shape[1]] = arr
        layers.append(Layer(canvas, name=pl.name, visible=pl.visible))
    return LayerStack(layers)
