"""Background completion: fill the pixels hidden behind an object (weight-free methods).

All functions take an ``H×W×3`` float image in ``[0, 1]`` and an ``H×W`` bool ``hole`` and
return the image with the hole filled; pixels outside the hole are returned unchanged.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def inpaint_opencv(image: np.ndarray, hole: np.ndarray, method: str = "telea", radius: int = 5) -> np.ndarray:
    """OpenCV's Telea (fast marching) or Navier-Stokes inpainting, on 8-bit data."""
    import cv2

    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    img8 = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    out = cv2.inpaint(img8, hole.astype(np.uint8), radius, flag).astype(np.float32) / 255.0
    return np.where(hole[..., None], out, image).astype(np.float32)


METHODS: dict[str, Callable[..., np.ndarray]] = {
    "telea": lambda image, hole: inpaint_opencv(image, hole, "telea"),
    "ns": lambda image, hole: inpaint_opencv(image, hole, "ns"),
}


def inpaint(image: np.ndarray, hole: np.ndarray, method: str = "telea") -> np.ndarray:
    """Fill ``hole`` in ``image`` with ``method`` (one of :data:`METHODS`)."""
    if method not in METHODS:
        raise ValueError(f"unknown inpainting method {method!r}; valid: {', '.join(sorted(METHODS))}")
    if not hole.any():
        return image.astype(np.float32)
    return METHODS[method](image, hole)
