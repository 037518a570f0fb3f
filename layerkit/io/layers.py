"""Writing and reading a :class:`~layerkit.types.LayerStack`: PNG folder, OpenRaster, PSD.

The format follows the path's suffix: ``.psd`` (:mod:`layerkit.io.psd`), ``.ora``
(:mod:`layerkit.io.ora`), otherwise a folder (here). Every writer is atomic (see
:mod:`layerkit.io.atomic`). Layers are 8-bit straight RGBA in every format; object layers are
stored cropped to their alpha bounding box with an offset where the format allows. Every reader
checks what the document claims first (:mod:`layerkit.io.document`): paths stay inside the
document, canvas and layer counts are bounded.

Folder layout (the ``layerkit decompose`` contract): a two-layer stack gives ``background.png``
(RGB), ``foreground.png`` (RGBA, canvas size), ``alpha.png`` (L) and ``layers.json``; a deeper
stack gives ``layer_00.png`` (background) … ``layer_NN.png`` (top) and ``layers.json``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from layerkit.errors import InputImageError, OutputError
from layerkit.io.atomic import atomic_path
from layerkit.io.document import check_canvas, clean_name, inside
from layerkit.io.image import DEFAULT_MAX_PIXELS, to_pil, to_uint8
from layerkit.io.owned import LAYERS_FORMAT_TAG as FORMAT_TAG
from layerkit.types import Layer, LayerStack

LAYERS_JSON = "layers.json"
_JSON_MAX_BYTES = 16 * 1024 * 1024


def save_stack(stack: LayerStack, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``stack`` to ``path`` (``.psd``, ``.ora`` or folder); returns the path."""
    if not len(stack):
        raise OutputError("cannot save an empty LayerStack")
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".psd":
        from layerkit.io.psd import write_psd as writer

        directory = False
    elif suffix == ".ora":
        from layerkit.io.ora import write_ora as writer

        directory = False
    elif suffix in ("", ".layers") or p.is_dir():
        writer, directory = _write_folder, True
    else:
        raise OutputError(f"unknown layer-stack format {suffix!r} for {str(p)!r}; use .psd, .ora or a folder path without suffix")
    with atomic_path(p, overwrite=overwrite, directory=directory, manifest=False) as tmp:  # layers.json lists the files
        writer(stack, tmp)
    return p


def load_stack(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LayerStack:
    """Read a stack written by :func:`save_stack` (or another PSD/ORA writer).

    Args:
        path: a folder with ``layers.json``, a ``.psd`` or an ``.ora`` file.
        max_pixels: largest canvas accepted (``None``: no limit; layer counts and the total
            stack size stay bounded, see :mod:`layerkit.io.document`).

    Raises:
        InputImageError: missing, unreadable or malformed document, a path leading outside it,
            or a canvas or stack over the limits.
    """
    p = Path(path)
    if not p.exists():
        raise InputImageError(f"layer stack {str(p)!r} does not exist")
    if p.is_dir():
        return _read_folder(p, max_pixels)
    if not p.is_file():
        raise InputImageError(f"layer stack {str(p)!r} is not a regular file (a pipe or device?)")
    suffix = p.suffix.lower()
    if suffix == ".psd":
        from layerkit.io.psd import read_psd

        return read_psd(p, max_pixels)
    if suffix == ".ora":
        from layerkit.io.ora import read_ora

        return read_ora(p, max_pixels)
    raise InputImageError(f"unknown layer-stack format {suffix!r}; expected .psd, .ora or a folder with layers.json")


def _layer_meta(layer: Layer, index: int) -> dict:
    return {"index": index, "name": clean_name(layer.name), "visible": layer.visible,
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


def _read_folder(d: Path, max_pixels: int | None) -> LayerStack:
    meta_path = d / LAYERS_JSON
    if not meta_path.is_file():
        raise InputImageError(f"{str(d)!r} has no {LAYERS_JSON}; it is not a layer folder written by layerkit")
    what = f"{str(meta_path)!r}"
    if meta_path.stat().st_size > _JSON_MAX_BYTES:
        raise InputImageError(f"{what} is over {_JSON_MAX_BYTES >> 20} MB; it is not a layerkit layers.json")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputImageError(f"{what} is not valid JSON ({str(e)[:120]}); rewrite the stack or restore the file") from None
    entries = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries or not all(isinstance(m, dict) for m in entries):
        raise InputImageError(f"{what} must hold {{\"layers\": [{{\"file\": ..., \"name\": ...}}, ...]}} with at least one layer")
    check_canvas(1, 1, len(entries), max_pixels, what)  # the layer count, before any file is opened
    files = [inside(d, m.get("file"), f"{LAYERS_JSON} layer {i} 'file'") for i, m in enumerate(entries)]
    sizes = [_png_size(f, max_pixels) for f in files]
    w, h = check_canvas(*sizes[0], len(entries), max_pixels, what)
    layers = []
    for i, (m, f, size) in enumerate(zip(entries, files, sizes)):
        if size != (w, h):
            raise InputImageError(f"layer {i} ({f.name}) is {size[0]}x{size[1]} but the canvas is {w}x{h}; "
                                  "layers of a folder stack share one size")
        arr = _read_png(f)
        visible = m.get("visible", True)
        layers.append(Layer(arr, name=clean_name(m.get("name", f"layer_{i}")),
                            visible=visible if isinstance(visible, bool) else True))
    return LayerStack(layers)


def _png_size(f: Path, max_pixels: int | None) -> tuple[int, int]:
    """Size of a layer image, from its header only (nothing decoded yet)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(f) as im:
                    w, h = im.size
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputImageError(f"layer image {str(f)!r} is not an image PIL can read") from None
    if max_pixels is not None and w * h > max_pixels:
        raise InputImageError(f"layer image {str(f)!r} has {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of "
                              f"{max_pixels / 1e6:.1f} MP; raise it with max_pixels=N if the stack is trusted")
    return w, h


def _read_png(f: Path) -> np.ndarray:
    old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # sizes were checked by _png_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(f) as im:
                return np.asarray(im.convert("RGBA"), np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as e:
        raise InputImageError(f"cannot read layer image {str(f)!r}: {str(e)[:120]} (truncated or corrupt?)") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _opaque(layer: Layer) -> bool:
    return bool(np.all(layer.alpha >= 1.0))


def crop_to_alpha(layer: Layer) -> tuple[np.ndarray, int, int]:
    """Layer RGBA as uint8, cropped to its 8-bit alpha bbox, with its ``(x, y)`` offset on the canvas."""
    u8 = to_uint8(layer.rgba)
    ys, xs = np.nonzero(u8[..., 3])
    if ys.size == 0:
        return u8[:1, :1], 0, 0
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return u8[y0:y1, x0:x1], int(x0), int(y0)
