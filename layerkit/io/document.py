"""Checks every layer-document reader applies to what a document claims (hostile-input guards).

A document (a folder's ``layers.json``, an ORA's ``stack.xml``, a PSD header) is data from
anywhere. Before anything is allocated or opened, its readers check here that:

* every path it names resolves inside the document (:func:`inside`): no absolute paths, no
  ``..``, no symbolic link leading out;
* its canvas has positive integer sides and at most ``max_pixels`` pixels, it has at most
  :data:`MAX_LAYERS` layers and at most :data:`MAX_STACK_PIXELS` layer pixels in all
  (:func:`check_canvas`), so a 200000² canvas is refused instead of allocating 596 GiB;
* offsets are finite integers (:func:`to_int`), and a layer placed partly or wholly off the canvas
  is clipped to it (:func:`paste`).

Layer names written to any format go through :func:`clean_name`.
"""

from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path

import numpy as np

from layerkit.errors import InputImageError

#: Most layers a document may hold (``layerkit layers`` writes at most 20).
MAX_LAYERS = 256
#: Most pixels of all layers together (layers × canvas pixels): 8 GB as float32 RGBA.
MAX_STACK_PIXELS = 500_000_000
#: Longest layer name kept, in characters (PSD's limit, also applied to ORA and folders).
MAX_NAME = 255


def inside(root: Path, relative: object, what: str) -> Path:
    """``root / relative`` if it names a regular file inside ``root``; else raise.

    Args:
        root: the document's folder.
        relative: the path as read from the document.
        what: the document and key, for the message (``"layers.json layer 2 'file'"``).

    Raises:
        InputImageError: not a string, absolute, escaping ``root`` (``..`` or a symbolic link
            leading out), or not an existing regular file.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise InputImageError(f"{what} must be a file name inside the document, got {_short(relative)}")
    if os.path.isabs(relative) or Path(relative).drive:
        raise InputImageError(f"{what} {_short(relative)} is an absolute path; a document may only name files inside itself")
    base = root.resolve()
    target = (root / relative).resolve()
    if target != base and base not in target.parents:
        raise InputImageError(f"{what} {_short(relative)} points outside the document folder; "
                              "a document may only name files inside itself")
    if not target.is_file():
        raise InputImageError(f"{what} {_short(relative)} does not exist in {str(root)!r} or is not a file")
    return target


def to_int(value: object, what: str) -> int:
    """A finite integer from a document attribute (``"12"``, ``"12.0"``, 12); else raise."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputImageError(f"{what} must be an integer, got {_short(value)}") from None
    if not math.isfinite(f) or f != int(f) or abs(f) > 2**31:
        raise InputImageError(f"{what} must be an integer, got {_short(value)}")
    return int(f)


def check_canvas(width: object, height: object, layers: int, max_pixels: int | None, what: str) -> tuple[int, int]:
    """Validate a document's canvas and layer count; returns ``(width, height)``.

    Raises:
        InputImageError: non-integer or non-positive sides, over ``max_pixels``, over
            :data:`MAX_LAYERS` layers or over :data:`MAX_STACK_PIXELS` layer pixels.
    """
    w, h = to_int(width, f"{what} canvas width"), to_int(height, f"{what} canvas height")
    if w < 1 or h < 1:
        raise InputImageError(f"{what} canvas is {w}x{h}; both sides must be at least 1 px")
    if max_pixels is not None and w * h > max_pixels:
        raise InputImageError(f"{what} canvas is {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:.1f} MP; "
                              "raise it with max_pixels=N if the document is trusted")
    if layers > MAX_LAYERS:
        raise InputImageError(f"{what} has {layers} layers; at most {MAX_LAYERS} are read")
    if layers * w * h > MAX_STACK_PIXELS:
        raise InputImageError(f"{what} has {layers} layers of {w}x{h}: {layers * w * h / 1e6:.0f} MP in all, over the limit of "
                              f"{MAX_STACK_PIXELS / 1e6:.0f} MP ({MAX_STACK_PIXELS * 16 / 1e9:.0f} GB as float32 RGBA)")
    return w, h


def paste(canvas: np.ndarray, part: np.ndarray, x: int, y: int) -> None:
    """Copy ``part`` (``h×w×C``) into ``canvas`` (``H×W×C``) at offset ``(x, y)``, clipped to the canvas."""
    H, W = canvas.shape[:2]
    h, w = part.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = part[y0 - y:y1 - y, x0 - x:x1 - x]


def clean_name(name: object, most: int = MAX_NAME) -> str:
    """A layer name every format can store: a string without control characters or lone
    surrogates, at most ``most`` characters (cut at a character boundary), never empty."""
    text = str(name) if name is not None else ""
    text = text.encode("utf-8", "replace").decode("utf-8") if _has_surrogates(text) else text
    text = "".join(c if unicodedata.category(c) not in ("Cc", "Cs") else " " for c in text).strip()
    return text[:most].rstrip() or "layer"


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _short(value: object, most: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= most else text[:most] + "…"
