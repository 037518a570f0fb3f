"""OpenRaster (``.ora``) layer stacks: a zip of ``stack.xml`` + one PNG per layer.

Reading treats the file as hostile: ``stack.xml`` may not declare a DTD or entities (no entity
expansion, so no "billion laughs"), its size and each member's size are bounded, the canvas and
layer count are checked before anything is allocated (:mod:`layerkit.io.document`), every ``src``
must name a member of the zip, and offsets must be integers; layers are clipped to the canvas.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image, UnidentifiedImageError

from layerkit.errors import InputImageError
from layerkit.io.document import check_canvas, clean_name, paste, to_int
from layerkit.io.image import to_pil
from layerkit.io.layers import crop_to_alpha
from layerkit.types import Layer, LayerStack

_XML_MAX_BYTES = 16 * 1024 * 1024


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def write_ora(stack: LayerStack, path: Path) -> None:
    """Write ``stack`` as OpenRaster 0.0.3 to ``path`` (topmost layer first in ``stack.xml``)."""
    h, w = stack.size  # type: ignore[misc]
    root = ET.Element("image", {"version": "0.0.3", "w": str(w), "h": str(h)})
    st = ET.SubElement(root, "stack")
    files: list[tuple[str, bytes]] = []
    for i, layer in enumerate(stack):
        u8, x, y = crop_to_alpha(layer)
        src = f"data/layer_{i:02d}.png"
        files.append((src, _png_bytes(Image.fromarray(u8, "RGBA"))))
        st.insert(0, ET.Element("layer", {"name": clean_name(layer.name), "src": src, "x": str(x), "y": str(y),
                                          "opacity": "1.0", "visibility": "visible" if layer.visible else "hidden",
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


def read_ora(path: Path, max_pixels: int | None) -> LayerStack:
    """Read an OpenRaster file (``max_pixels`` bounds the canvas; see the module docstring).

    Raises:
        InputImageError: not a zip or not OpenRaster, a DTD or entity in ``stack.xml``, bad or
            huge canvas, non-integer offsets, a ``src`` that is not a member, unreadable PNGs.
    """
    what = repr(str(path))
    try:
        with zipfile.ZipFile(path) as z:
            if _member(z, "mimetype", 1024, what) != b"image/openraster":
                raise InputImageError(f"{what} is not an OpenRaster file (bad mimetype)")
            root = _parse_stack(_member(z, "stack.xml", _XML_MAX_BYTES, what), what)
            stack_el = root.find("stack")
            els = list(reversed(stack_el.findall("layer"))) if stack_el is not None else []
            if not els:
                raise InputImageError(f"{what} has no layers in stack.xml")
            w, h = check_canvas(root.get("w"), root.get("h"), len(els), max_pixels, what)
            layers = [_read_layer(z, el, i, w, h, what) for i, el in enumerate(els)]
    except zipfile.BadZipFile as e:
        raise InputImageError(f"{what} is not a valid OpenRaster file: {str(e)[:120]}") from None
    except (OSError, EOFError, zipfile.LargeZipFile, NotImplementedError) as e:  # zipfile: NotImplementedError = unsupported compression
        raise InputImageError(f"{what} cannot be read: {str(e)[:120]} (truncated or corrupt?)") from None
    return LayerStack(layers)


def _member(z: zipfile.ZipFile, name: str, most: int, what: str) -> bytes:
    """Read zip member ``name`` of at most ``most`` bytes (uncompressed, as the zip declares it)."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise InputImageError(f"{what} has no {name!r}; it is not a complete OpenRaster file") from None
    if info.file_size > most:
        raise InputImageError(f"{what}: {name!r} is {info.file_size / 1e6:.0f} MB uncompressed, "
                              f"over the limit of {most / 1e6:.0f} MB")
    with z.open(info) as f:
        data = f.read(most + 1)  # a lying header cannot make us read more
    if len(data) > most:
        raise InputImageError(f"{what}: {name!r} is over the limit of {most / 1e6:.0f} MB")
    return data


def _parse_stack(data: bytes, what: str) -> ET.Element:
    """Parse ``stack.xml`` without DTDs or entities (hand-checked: defusedxml is not a dependency)."""
    head = data.upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise InputImageError(f"{what}: stack.xml declares a DTD or entities, which OpenRaster does not use; refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise InputImageError(f"{what}: stack.xml is not valid XML ({str(e)[:120]})") from None
    if root.tag != "image":
        raise InputImageError(f"{what}: stack.xml's root is <{root.tag[:40]}>, expected <image>")
    return root


def _read_layer(z: zipfile.ZipFile, el: ET.Element, i: int, w: int, h: int, what: str) -> Layer:
    src = el.get("src")
    if not src:
        raise InputImageError(f"{what}: layer {i} has no src attribute")
    x, y = to_int(el.get("x", 0), f"{what} layer {i} x"), to_int(el.get("y", 0), f"{what} layer {i} y")
    data = _member(z, src, 8 * w * h + (1 << 20), what)  # more than any PNG of a canvas-size layer needs
    old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                pw, ph = im.size
                if pw * ph > 4 * w * h:  # a layer may overhang the canvas, not be a bomb
                    raise InputImageError(f"{what}: layer {i} image is {pw}x{ph}, far larger than the {w}x{h} canvas")
                part = np.asarray(im.convert("RGBA"), np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputImageError(f"{what}: layer {i} ({src[:60]!r}) is not a readable image: {str(e)[:120]}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    canvas = np.zeros((h, w, 4), np.float32)
    paste(canvas, part, x, y)
    return Layer(canvas, name=clean_name(el.get("name", f"layer_{i}")), visible=el.get("visibility", "visible") != "hidden")
