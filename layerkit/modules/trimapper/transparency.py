"""Trimap with transparent regions widened (Matte Anything, as used by LayeringDiff §3.2).

First the morphology trimap (eroded mask = 1, outside the dilated mask = 0, the band between =
0.5). Then the pipeline asks its grounder for transparent material — :attr:`transparency_prompt`,
``"glass. lens. crystal. …"`` — and passes the boxes found as ``transparent_boxes``: wherever
the object (the mask, or the sure-foreground of the trimap) meets one of those boxes, the trimap
becomes unknown (0.5), so the matting stage estimates a fractional alpha there instead of
copying a hard 1. Without boxes it is exactly :class:`MorphologyTrimapper`.
"""

from __future__ import annotations

import numpy as np

from layerkit.modules.trimapper.morphology import MorphologyTrimapper, ensure_fg_bg

#: Matte Anything's list of transparent materials, as one grounding query.
DEFAULT_TRANSPARENCY_PROMPT = "glass. lens. crystal. diamond. bubble. bulb. web. grid. water. smoke. veil. ice."


def widen_transparent(trimap: np.ndarray, mask: np.ndarray, boxes: np.ndarray, margin: int = 0) -> np.ndarray:
    """Mark the object's pixels inside transparent boxes as unknown.

    Args:
        trimap: ``H×W`` float trimap in {0, 0.5, 1}.
        mask: ``H×W`` bool object mask.
        boxes: ``N×4`` xyxy pixel boxes of transparent material (exclusive ends, fractional
            coordinates rounded outwards).
        margin: grow each box by this many pixels first.

    Returns:
        A new trimap: 0.5 where (``mask`` or ``trimap == 1``) lies inside a box, else unchanged.
    """
    out = np.asarray(trimap, np.float32).copy()
    h, w = out.shape
    inside = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        c0, r0 = max(0, int(np.floor(x0)) - margin), max(0, int(np.floor(y0)) - margin)
        c1, r1 = min(w, int(np.ceil(x1)) + margin), min(h, int(np.ceil(y1)) + margin)
        if c1 > c0 and r1 > r0:
            inside[r0:r1, c0:c1] = True
    obj = np.asarray(mask, bool) | (out >= 1.0)
    out[inside & obj] = 0.5
    return out


class TransparencyTrimapper(MorphologyTrimapper):
    """Mask (+ transparent boxes) → trimap (0 = background, 0.5 = unknown, 1 = foreground).

    Args:
        band: fixed half-width of the unknown band in pixels (``None``: scale with the object).
        band_ratio: half-width as a fraction of ``sqrt(mask area)`` when ``band`` is ``None``.
        min_band: smallest automatic half-width (px).
        max_band: largest automatic half-width (px).
        soft_threshold: soft-mask values strictly inside ``(t, 1 − t)`` become unknown.
        transparency_prompt: grounding query for transparent material; the pipeline runs it
            through its grounder and passes the boxes (empty string: no second query).
        box_margin: pixels added around each transparent box.

    Example:
        >>> tm = TransparencyTrimapper()
        >>> trimap = tm(mask, image, transparent_boxes=np.array([[40, 10, 90, 60]]))
    """

    def __init__(self, band: int | None = None, band_ratio: float = 0.03, min_band: int = 4, max_band: int = 60,
                 soft_threshold: float = 0.05, transparency_prompt: str = DEFAULT_TRANSPARENCY_PROMPT,
                 box_margin: int = 0) -> None:
        super().__init__(band=band, band_ratio=band_ratio, min_band=min_band, max_band=max_band,
                         soft_threshold=soft_threshold)
        if box_margin < 0:
            raise ValueError(f"trimapper.box_margin must be >= 0, got {box_margin}")
        self.transparency_prompt = transparency_prompt.strip()
        self.box_margin = box_margin

    def __call__(self, mask: np.ndarray, image: np.ndarray | None = None,
                 transparent_boxes: np.ndarray | None = None) -> np.ndarray:
        """Build the trimap.

        Args:
            mask: ``H×W`` bool or soft mask in ``[0, 1]``.
            image: unused (kept for the role's interface).
            transparent_boxes: ``N×4`` xyxy boxes of transparent material in this image's pixels.

        Returns:
            ``H×W`` float32 trimap in {0, 0.5, 1}, with at least one sure-FG and one sure-BG pixel.
        """
        trimap = super().__call__(mask, image)
        if transparent_boxes is None or len(transparent_boxes) == 0:
            return trimap
        hard = np.asarray(mask, np.float32) > 0.5
        return ensure_fg_bg(widen_transparent(trimap, hard, transparent_boxes, self.box_margin), hard)
