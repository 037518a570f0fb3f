"""Reading and writing images.

Images inside layerkit are ``numpy.float32`` arrays in ``[0, 1]``, HWC layout: ``H×W×3`` RGB or
``H×W×4`` straight (un-premultiplied) RGBA; masks and alphas are ``H×W``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from layerkit.errors import InputImageError, OutputError
from layerkit.io.atomic import atomic_path

#: Largest image (in pixels) read unless the caller raises the limit (``--max-pixels``).
#: 100 MP is about 1.2 GB as float32 RGB; larger files are refused as possible decompression bombs.
DEFAULT_MAX_PIXELS = 100_000_000
#: Smallest accepted side in pixels: below it there is nothing to decompose.
MIN_SIDE = 8

ImageLike = Union[str, os.PathLike, np.ndarray, Image.Image]  # noqa: UP007 - a runtime alias, also on 3.10


def load_image(source: ImageLike, max_pixels: int | None = DEFAULT_MAX_PIXELS, min_side: int = MIN_SIDE) -> np.ndarray:
    """Load an image as RGB float32.

    Handles PNG, JPEG, WebP, TIFF, BMP; 1/8/16/32-bit; gray, palette, RGB, RGBA (flattened over
    white), CMYK; and applies the EXIF orientation.

    Args:
        source: file path, ``PIL.Image`` or array (``H×W``, ``H×W×3`` or ``H×W×4``; uint8,
            uint16 or float in ``[0, 1]``).
        max_pixels: refuse images with more pixels (decompression-bomb guard); ``None`` disables.
        min_side: refuse images whose shorter side is below this.

    Returns:
        ``H×W×3`` float32 array in ``[0, 1]``.

    Raises:
        InputImageError: missing, unreadable, truncated, too small or too large image.
    """
    if isinstance(source, np.ndarray):
        arr = to_float_image(source)
        _check_size(arr.shape[1], arr.shape[0], "array", max_pixels, min_side)
        return _to_rgb(arr)
    if isinstance(source, Image.Image):
        _check_size(*source.size, "image", max_pixels, min_side)
        return _to_rgb(_pil_to_float(ImageOps.exif_transpose(source)))
    path = Path(source)
    if not path.exists():
        raise InputImageError(f"input image {str(path)!r} does not exist; check the path")
    if path.is_dir():
        raise InputImageError(f"input {str(path)!r} is a folder, not an image file")
    if not path.is_file():
        raise InputImageError(f"input {str(path)!r} is not a regular file (a pipe or device?); give an image file")
    if path.stat().st_size == 0:
        raise InputImageError(f"input image {str(path)!r} is an empty (0-byte) file")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own check below replaces PIL's warning-based one
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                _check_size(*im.size, repr(str(path)), max_pixels, min_side)
                im.load()
                arr = _pil_to_float(ImageOps.exif_transpose(im))
    except UnidentifiedImageError:
        raise InputImageError(f"{str(path)!r} is not an image file PIL can read (PNG, JPEG, WebP, TIFF, BMP)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputImageError(f"cannot read image {str(path)!r}: {_first_line(e)} (is the file truncated or corrupt?)") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    return _to_rgb(arr)


def load_mask(source: ImageLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load a mask or alpha image as ``H×W`` float32 in ``[0, 1]`` (luminance; alpha if RGBA).

    Raises:
        InputImageError: missing or unreadable file, over ``max_pixels``, or an array with
            non-finite or out-of-range values (see :func:`to_float_image`).
    """
    if isinstance(source, np.ndarray):
        arr = to_float_image(source)
    else:
        path = Path(source) if not isinstance(source, Image.Image) else None
        if path is not None and not path.is_file():
            raise InputImageError(f"mask {str(path)!r} does not exist or is not a file; check the path")
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own check below replaces PIL's (which ignores --max-pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with (Image.open(path) if path is not None else _nullctx(source)) as im:
                    _check_size(*im.size, "mask", max_pixels, 1)
                    im.load()
                    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                        arr = to_float_image(np.asarray(im.convert("RGBA")))[..., 3]
                    else:
                        arr = _pil_to_float(im)
        except UnidentifiedImageError:
            raise InputImageError(f"mask {str(source)!r} is not an image file") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise InputImageError(f"cannot read mask {str(source)!r}: {_first_line(e)}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
    if arr.ndim == 3:
        arr = arr[..., 3] if arr.shape[2] == 4 else arr[..., :3].mean(axis=2)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _first_line(e: BaseException, most: int = 200) -> str:
    """First line of an exception's message, at most ``most`` characters (hostile files can make
    parsers echo megabytes)."""
    text = (str(e).splitlines() or [type(e).__name__])[0]
    return text if len(text) <= most else text[:most] + "…"


class _nullctx:
    def __init__(self, im: Image.Image) -> None:
        self.im = im

    def __enter__(self) -> Image.Image:
        return self.im

    def __exit__(self, *exc: object) -> None:
        return None


def _check_size(w: int, h: int, what: str, max_pixels: int | None, min_side: int) -> None:
    if max_pixels is not None and w * h > max_pixels:
        raise InputImageError(
            f"{what} has {w}x{h} = {w * h / 1e6:.1f} MP, over the limit of {max_pixels / 1e6:.1f} MP "
            "(decompression-bomb guard); raise it with --max-pixels N (max_pixels=N) if the image is trusted")
    if min(w, h) < min_side:
        raise InputImageError(f"{what} is {w}x{h} pixels; both sides must be at least {min_side} px")


def _pil_to_float(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16).astype(np.float32) / 65535.0
    if mode == "I":
        a = np.asarray(im, dtype=np.int64)
        scale = 65535.0 if a.max(initial=0) > 255 else 255.0
        return np.clip(a.astype(np.float32) / scale, 0, 1)
    if mode == "F":
        return to_float_image(np.asarray(im, dtype=np.float32))
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    if mode == "L":
        return np.asarray(im, dtype=np.float32) / 255.0
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


#: Float images may stray this far outside ``[0, 1]`` (rounding); they are clipped. Beyond it: an error.
FLOAT_TOLERANCE = 1e-3


def to_float_image(arr: np.ndarray) -> np.ndarray:
    """Convert a uint8/uint16/bool/float array to float32 in ``[0, 1]`` (same shape).

    Float arrays must already be in ``[0, 1]`` (values up to :data:`FLOAT_TOLERANCE` outside are
    clipped): a float image in ``0..255`` is refused with a hint rather than silently clipped to
    white. Convert it with ``arr / 255`` or pass ``arr.astype(np.uint8)``.

    Raises:
        InputImageError: NaN or infinite values, floats outside ``[0, 1]``, or another dtype.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputImageError(f"image array contains {int((~np.isfinite(arr)).sum())} NaN or infinite values; "
                                  "replace them (np.nan_to_num) before passing the array")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < -FLOAT_TOLERANCE or hi > 1.0 + FLOAT_TOLERANCE:
            hint = "; it looks like 0..255: divide by 255 or pass uint8" if hi <= 255.0 + FLOAT_TOLERANCE and lo >= 0 else ""
            raise InputImageError(f"float image values must lie in [0, 1], got {lo:g}..{hi:g}{hint}")
        return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)
    raise InputImageError(f"unsupported image array dtype {arr.dtype}; use uint8, uint16, bool or float in [0, 1]")


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 2:  # gray + alpha
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputImageError(f"expected an H×W, H×W×3 or H×W×4 image, got shape {arr.shape}")
    if arr.shape[2] == 4:  # flatten straight alpha over white
        a = arr[..., 3:4]
        arr = arr[..., :3] * a + (1.0 - a)
    return np.ascontiguousarray(arr, dtype=np.float32)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` → uint8 with rounding (any shape)."""
    return np.clip(np.rint(np.asarray(arr, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def to_pil(arr: np.ndarray) -> Image.Image:
    """``H×W`` (L), ``H×W×3`` (RGB) or ``H×W×4`` (RGBA) float array → 8-bit PIL image."""
    u8 = to_uint8(arr)
    mode = {2: "L"}.get(u8.ndim) or {3: "RGB", 4: "RGBA", 1: "L"}[u8.shape[2]]
    if u8.ndim == 3 and u8.shape[2] == 1:
        u8 = u8[..., 0]
    return Image.fromarray(u8, mode)


def save_image(arr: np.ndarray, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write an ``H×W``/``H×W×3``/``H×W×4`` float image atomically (format from the suffix)."""
    p = Path(path)
    fmt = Image.registered_extensions().get(p.suffix.lower())
    if fmt is None:
        raise OutputError(f"unknown image suffix {p.suffix!r} for {str(p)!r}; use .png, .jpg, .webp or .tif")
    im = to_pil(arr)
    if fmt == "JPEG" and im.mode == "RGBA":
        raise OutputError(f"JPEG cannot store alpha ({str(p)!r}); use .png")
    with atomic_path(p, overwrite=overwrite) as tmp:
        im.save(tmp, format=fmt)
    return p
