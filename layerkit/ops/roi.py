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


def cut_sides(mask: np.ndarray, roi: tuple[int, int, int, int], size: tuple[int, int], min_share: float = 0.05) -> list[str]:
    """Sides of ``roi`` through which the object seems to continue: the ``h×w`` mask of the region
    covers at least ``min_share`` of that side's pixels, and the side is not the image's border.

    Returns:
        A subset of ``["left", "top", "right", "bottom"]``.
    """
    h, w = size
    x0, y0, x1, y1 = roi
    m = np.asarray(mask) > 0.5
    edges = {"left": (x0 > 0, m[:, 0]), "top": (y0 > 0, m[0, :]), "right": (x1 < w, m[:, -1]), "bottom": (y1 < h, m[-1, :])}
    return [side for side, (inside, line) in edges.items() if inside and line.size and line.mean() >= min_share]


def grow_sides(roi: tuple[int, int, int, int], sides: list[str], size: tuple[int, int], ratio: float) -> tuple[int, int, int, int]:
    """``roi`` grown by ``ratio ×`` its larger side on ``sides``, clipped to an image of ``size = (h, w)``."""
    h, w = size
    x0, y0, x1, y1 = roi
    m = int(round(ratio * max(x1 - x0, y1 - y0)))
    return (max(0, x0 - m) if "left" in sides else x0, max(0, y0 - m) if "top" in sides else y0,
            min(w, x1 + m) if "right" in sides else x1, min(h, y1 + m) if "bottom" in sides else y1)
