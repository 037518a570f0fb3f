"""Regions of interest: boxes around a prompt, cropping and pasting back."""

from __future__ import annotations

import numpy as np


def expand_box(box: tuple[int, int, int, int], size: tuple[int, int], ratio: float, min_margin: int) -> tuple[int, int, int, int]:
    """Grow ``box`` (xyxy, exclusive ends) by ``ratio × its larger side`` (at least
    ``min_margin`` px) on every side, clipped to an image of ``size = (h, w)``."""
    h, w = size
    x0, y0, x1, y1 = box
    m = max(int(round(ratio * max(x1 - x0, y1 - y0))), int(min_margin))
    return max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)


def crop(arr: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return arr[y0:y1, x0:x1]


def paste(canvas: np.ndarray, part: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Write ``part`` into ``canvas`` at ``box`` in place; returns ``canvas``."""
    x0, y0, x1, y1 = box
    canvas[y0:y1, x0:x1] = part
    return canvas


def scale_to_side(size: tuple[int, int], max_side: int) -> float:
    """Factor (<= 1) that brings the longer side of ``size = (h, w)`` down to ``max_side``."""
    return min(1.0, float(max_side) / max(size))
