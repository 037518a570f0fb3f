"""Photoshop (``.psd``) layer stacks, through psd-tools.

Layer names are written as Unicode (psd-tools stores them in the ``luni`` tagged block and a
MacRoman fallback, ``?`` where MacRoman cannot say it), cleaned and cut to 255 characters
(:func:`layerkit.io.document.clean_name`), so ``宇航员😀`` or a 400-character name round-trips as
far as the format allows. Reading checks the canvas and layer count before decoding any layer
and clips layers that overhang the canvas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from layerkit.errors import InputImageError
from layerkit.io.document import MAX_NAME, check_canvas, clean_name, paste
from layerkit.io.layers import crop_to_alpha
from layerkit.types import Layer, LayerStack


def write_psd(stack: LayerStack, path: Path) -> None:
    """Write ``stack`` as an RGBA PSD (bottom → top), each layer cropped to its alpha box."""
    from psd_tools import PSDImage
    from psd_tools.api.layers import PixelLayer

    h, w = stack.size  # type: ignore[misc]
    psd = PSDImage.new("RGBA", (w, h))
    for layer in stack:  # psd-tools appends bottom → top
        u8, x, y = crop_to_alpha(layer)
        px = PixelLayer.frompil(Image.fromarray(u8, "RGBA"), psd, name="layer", top=y, left=x)
        px.name = clean_name(layer.name, MAX_NAME)  # the setter writes luni (Unicode) + a MacRoman fallback
        px.visible = layer.visible
    psd.save(str(path))


def read_psd(path: Path, max_pixels: int | None) -> LayerStack:
    """Read a PSD's top-level layers (bottom → top) as canvas-size layers.

    Raises:
        InputImageError: unreadable file, a canvas or stack over the limits, undecodable layers.
    """
    from psd_tools import PSDImage

    what = repr(str(path))
    try:
        psd = PSDImage.open(path)
    except Exception as e:  # psd-tools raises many types on bad files
        raise InputImageError(f"{what} is not a readable PSD file: {str(e)[:120]}") from None
    members = list(psd)
    if not members:
        raise InputImageError(f"{what} has no layers")
    w, h = check_canvas(psd.width, psd.height, len(members), max_pixels, what)
    layers = []
    for i, pl in enumerate(members):  # bottom → top
        canvas = np.zeros((h, w, 4), np.float32)
        if pl.width * pl.height > 4 * w * h:
            raise InputImageError(f"{what}: layer {i} is {pl.width}x{pl.height}, far larger than the {w}x{h} canvas")
        try:
            arr = pl.numpy()
        except Exception as e:  # psd-tools' decoders raise many types on corrupt channel data
            raise InputImageError(f"{what}: layer {i} cannot be decoded: {str(e)[:120]}") from None
        if arr is not None and arr.size:
            if arr.ndim == 2:
                arr = arr[..., None]
            if arr.shape[2] in (1, 2):  # gray (+ alpha)
                arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2)
            if arr.shape[2] == 3:
                arr = np.concatenate([arr, np.ones(arr.shape[:2] + (1,), arr.dtype)], axis=2)
            paste(canvas, np.nan_to_num(arr[..., :4].astype(np.float32)), int(pl.left), int(pl.top))
        layers.append(Layer(canvas, name=clean_name(pl.name), visible=bool(pl.visible)))
    return LayerStack(layers)
