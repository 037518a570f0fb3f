"""Trimap from a mask by erosion and dilation with a Euclidean disk.

Erosion and dilation are computed exactly from distance transforms (OpenCV): ``erode(m, r) =
dist_to_background(m) > r`` and ``dilate(m, r) = dist_to_object(m) <= r``. This costs O(pixels)
time and memory for any radius; kornia's ``morphology`` builds a k²-sized neighbourhood tensor
per pixel, which took 21 s and 0.8 GB for a 60-px band on a 463² crop and does not fit 12-MP
crops at all.

The unknown band's half-width scales with the object (``band_ratio × sqrt(object area)``,
clamped to ``[min_band, max_band]``) unless ``band`` fixes it. The trimap always keeps some
sure foreground and some sure background, even for tiny or thin objects, because closed-form
and learned matting need both.
"""

from __future__ import annotations

import numpy as np


class MorphologyTrimapper:
    """Mask → trimap (0 = background, 0.5 = unknown, 1 = foreground).

    Args:
        band: fixed half-width of the unknown band in pixels (``None``: scale with the object).
        band_ratio: half-width as a fraction of ``sqrt(mask area)`` when ``band`` is ``None``.
        min_band: smallest automatic half-width (px).
        max_band: largest automatic half-width (px).
        soft_threshold: for a soft mask, values strictly between ``soft_threshold`` and
            ``1 - soft_threshold`` are added to the unknown region.
    """

    def __init__(self, band: int | None = None, band_ratio: float = 0.03, min_band: int = 4, max_band: int = 60,
                 soft_threshold: float = 0.05) -> None:
        if band is not None and band < 1:
            raise ValueError(f"trimapper.band must be >= 1 pixel, got {band}")
        self.band = band
        self.band_ratio = band_ratio
        self.min_band = min_band
        self.max_band = max_band
        self.soft_threshold = soft_threshold

    def band_for(self, mask: np.ndarray) -> int:
        """Half-width of the unknown band for a binary ``mask``."""
        if self.band is not None:
            return int(self.band)
        r = self.band_ratio * np.sqrt(float(mask.sum()))
        return int(np.clip(round(r), self.min_band, self.max_band))

    def __call__(self, mask: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """Build the trimap.

        Args:
            mask: ``H×W`` bool or soft mask in ``[0, 1]``.
            image: unused (kept for the role's interface).

        Returns:
            ``H×W`` float32 trimap with values in {0, 0.5, 1}.
        """
        soft = np.asarray(mask, np.float32)
        hard = soft > 0.5
        r = self.band_for(hard)
        fg, un = morph(hard, r)
        trimap = np.where(un, 0.5, 0.0).astype(np.float32)
        trimap[fg] = 1.0
        t = self.soft_threshold
        trimap[(soft > t) & (soft < 1 - t)] = 0.5
        return ensure_fg_bg(trimap, hard)


def morph(mask: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(eroded, dilated) ``mask`` with a Euclidean disk of ``radius`` px.

    Pixels outside the frame count as neither object nor background, so an object that touches
    the image border is not eroded from that side.
    """
    import cv2

    m = np.ascontiguousarray(mask, np.uint8)
    if not m.any():
        return np.zeros(m.shape, bool), np.zeros(m.shape, bool)
    if m.all():
        return np.ones(m.shape, bool), np.ones(m.shape, bool)
    pad = radius + 1  # replicate the border so the frame is neutral
    mp = cv2.copyMakeBorder(m, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    inside = cv2.distanceTransform(mp, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[pad:-pad, pad:-pad]
    outside = cv2.distanceTransform(1 - mp, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[pad:-pad, pad:-pad]
    return inside > radius, outside <= radius


def ensure_fg_bg(trimap: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Guarantee at least one sure-FG and one sure-BG pixel.

    Sure FG falls back to the mask's deepest pixels (largest distance to its edge), sure BG to
    the pixels farthest from the mask; thin or tiny objects thus keep a usable trimap.
    """
    import cv2

    out = trimap.copy()
    if not (out == 1.0).any() and mask.any():
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        out[dist >= dist.max() * 0.999] = 1.0
    if not (out == 0.0).any():
        inv = (~mask).astype(np.uint8)
        if inv.any():
            dist = cv2.distanceTransform(inv, cv2.DIST_L2, 3)
            out[dist >= dist.max() * 0.999] = 0.0
        else:  # mask covers everything: use the frame as background
            out[[0, -1], :] = 0.0
            out[:, [0, -1]] = 0.0
    return out
