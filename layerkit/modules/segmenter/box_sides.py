"""Box sides that the object crosses (a box drawn too tight), used by :mod:`.grabcut` (``cut_sides``).

A user's box often cuts the object: an arm or a side of a suit lies outside it. GrabCut takes
everything outside the box as known background, so its background model learns the object's
own colour there and the object is lost (the shipped astronaut photo with a box cutting the
suit keeps only the badges). Locally this looks like background that enters the box across a
side (:func:`~layerkit.modules.segmenter.grabcut_parts.continued_background`): in both, the
colour just outside the side continues inside. The difference is where else that colour lies:

* the object crossing a side — the colour just outside the side is common in the box's centre
  (the object is centred in its box) and rare beyond the *other* sides (the surrounding background);
* background entering across a side — the colour is the background's, rare in the box's centre
  (the object is there), and usually found beyond other sides too.

:func:`crossed_sides` tests each side not on the image frame with those two histograms (the
reference background also holds the box's own rim along the other sides); the segmenter then
crops the image at the crossed sides (:func:`crossed_side_crop`), so the part beyond them is not
known background, and the side lies on the frame of the cropped image, where the
``frame_anchor`` ellipses run up to it (the object cut by the frame). That is done only when the
run on the whole image has lost the object, and the cropped run is kept only when it covers
clearly more of the box (:func:`segment_cut_box`).

Measured (docs/benchmarks.md, "A box that cuts the object"; ``benchmarks/cut_box.py``): with
``segmenter.cut_sides=0.2`` the cut-box protocol gains on the 12 real photos (α SAD in the box
54.4 → 38.2: the object lost entirely) and the normal boxes of the photos and of dev30 are
unchanged; but on 120 held-out composites the cut boxes lose (6.82 → 6.94) and one normal box
changes (a green plant on green grass, whose colour lies beyond the sides too: 6.11 → 6.26).
So ``classical`` leaves it off.
"""

from __future__ import annotations

import numpy as np

from layerkit.ops.colour import colour_index, region_histogram

SIDES = ("left", "top", "right", "bottom")


def crossed_sides(image: np.ndarray, box: np.ndarray, threshold: float = 0.2, **kw: float) -> list[str]:
    """The sides of ``box`` that the object inside it crosses: their :func:`side_scores` reach ``threshold``.

    ``kw`` goes to :func:`side_scores`. Returns a subset of :data:`SIDES`, in that order.
    """
    return [s for s, v in side_scores(image, box, **kw).items() if v >= threshold]


def side_scores(image: np.ndarray, box: np.ndarray, band: float = 0.04,
                radius: float = 0.45, ratio: float = 4.0, min_share: float = 0.02, bins: int = 8,
                work_side: int = 256, frame_tol: float = 1.0, rim: float = 0.08) -> dict[str, float]:
    """Per side of ``box`` not on the image frame: the object-coloured share of the band just outside it.

    For each side with room outside it, the pixels of a band ``band`` × the box's size wide just
    outside the side (over the side's length) are *object-coloured* when their colour bin (``bins``
    per channel) holds at least ``min_share`` of the box's centre (the ellipse of relative
    ``radius``) and is more than ``ratio`` times as frequent there as in the reference background:
    beyond the other sides (their outside strips, up to a quarter of the box's size deep) and the
    box's own rim along them (``rim`` × the box's size deep).

    Args:
        image: ``H×W×3`` float RGB in ``[0, 1]``.
        box: ``(x0, y0, x1, y1)`` in ``image``'s pixels (``x1, y1`` exclusive).
        band: width of the outside band, as a fraction of the box's width (left/right) or height.
        radius: relative radius of the centre ellipse (1 = inscribed in the box).
        ratio: how much more frequent in the centre than beyond the other sides a colour must be.
        min_share: smallest share of the centre a colour bin must hold.
        bins: colour bins per channel.
        work_side: the image is downscaled to this long side first (speed).
        frame_tol: a side within this many pixels of the frame has nothing outside it.
        rim: depth of the box's rim in the reference, as a fraction of the box's size; 0 leaves it out.

    Returns:
        ``{side: share in [0, 1]}`` for the sides with room outside them.
    """
    import cv2

    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    on_frame = {"left": x0 <= frame_tol, "top": y0 <= frame_tol, "right": x1 >= w - frame_tol, "bottom": y1 >= h - frame_tol}
    if all(on_frame.values()) or x1 - x0 < 8 or y1 - y0 < 8:
        return {}
    k = min(1.0, work_side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA) if k < 1 else image
    sh, sw = small.shape[:2]
    bx0, by0 = int(np.clip(np.floor(x0 * k), 0, sw - 1)), int(np.clip(np.floor(y0 * k), 0, sh - 1))
    bx1, by1 = int(np.clip(np.ceil(x1 * k), bx0 + 1, sw)), int(np.clip(np.ceil(y1 * k), by0 + 1, sh))
    bw, bh = bx1 - bx0, by1 - by0
    idx = colour_index(small, bins)
    yy, xx = np.mgrid[:sh, :sw]
    centre = ((xx - (bx0 + bx1) / 2) / (bw / 2)) ** 2 + ((yy - (by0 + by1) / 2) / (bh / 2)) ** 2 <= radius ** 2
    if not centre.any():
        return {}

    def strip(side: str, depth: float) -> np.ndarray:
        out = np.zeros((sh, sw), bool)
        dx, dy = max(1, int(round(depth * bw))), max(1, int(round(depth * bh)))
        if side == "left":
            out[by0:by1, max(0, bx0 - dx):bx0] = True
        elif side == "right":
            out[by0:by1, bx1:bx1 + dx] = True
        elif side == "top":
            out[max(0, by0 - dy):by0, bx0:bx1] = True
        else:
            out[by1:by1 + dy, bx0:bx1] = True
        return out

    def strip_in(side: str, depth: float) -> np.ndarray:
        out = np.zeros((sh, sw), bool)
        dx, dy = max(1, int(round(depth * bw))), max(1, int(round(depth * bh)))
        sl = {"left": (slice(by0, by1), slice(bx0, bx0 + dx)), "right": (slice(by0, by1), slice(bx1 - dx, bx1)),
              "top": (slice(by0, by0 + dy), slice(bx0, bx1)), "bottom": (slice(by1 - dy, by1), slice(bx0, bx1))}[side]
        out[sl] = True
        return out

    open_sides = [s for s in SIDES if not on_frame[s] and strip(s, band).any()]
    p_centre = region_histogram(idx, centre, bins)
    crossed = {}
    for side in open_sides:
        others = np.zeros((sh, sw), bool)
        for s in open_sides:
            if s != side:
                others |= strip(s, 0.25)
        if rim > 0:  # the box's own rim along the other sides: background too
            inner = np.zeros((sh, sw), bool)
            inner[by0:by1, bx0:bx1] = True
            core = np.zeros((sh, sw), bool)
            rx, ry = max(1, int(round(rim * bw))), max(1, int(round(rim * bh)))
            core[by0 + ry:by1 - ry, bx0 + rx:bx1 - rx] = True
            ring = inner & ~core
            ring &= ~strip_in(side, rim)
            others |= ring
        p_other = region_histogram(idx, others, bins) if others.any() else np.zeros_like(p_centre)
        objectish = (p_centre >= min_share) & (p_centre > ratio * p_other)
        near = strip(side, band)
        crossed[side] = float(objectish[idx[near]].mean())
    return crossed


def crossed_side_crop(image: np.ndarray, box: np.ndarray, sides: list[str]) -> tuple[int, int, int, int] | None:
    """The crop ``(x0, y0, x1, y1)`` of ``image`` that ends at the crossed ``sides`` of ``box``.

    None when nothing is cut, or when the crop would leave no pixel outside the box (no known
    background: every other side lies on the frame or is crossed too).
    """
    if not sides:
        return None
    h, w = image.shape[:2]
    x0, y0, x1, y1 = 0, 0, w, h
    bx0, by0, bx1, by1 = (float(v) for v in box)
    if "left" in sides:
        x0 = int(np.clip(np.floor(bx0), 0, w - 1))
    if "right" in sides:
        x1 = int(np.clip(np.ceil(bx1), x0 + 1, w))
    if "top" in sides:
        y0 = int(np.clip(np.floor(by0), 0, h - 1))
    if "bottom" in sides:
        y1 = int(np.clip(np.ceil(by1), y0 + 1, h))
    room = (bx0 - x0 > 1) or (by0 - y0 > 1) or (x1 - bx1 > 1) or (y1 - by1 > 1)
    return (x0, y0, x1, y1) if room else None


def segment_cut_box(segment, image: np.ndarray, prompt, threshold: float = 0.2, gain: float = 1.5,
                    lost: float = 0.15) -> np.ndarray | None:
    """The mask of a one-box ``prompt`` whose box cuts the object, or None when it does not.

    ``segment(image, prompt)`` is the segmenter's own run. When :func:`crossed_sides` finds sides
    the object crosses (``threshold``) and the run on the whole image has lost the object (its mask
    covers less than ``lost`` of the box), the image is cropped at those sides
    (:func:`crossed_side_crop`) and segmented again; the cropped run is kept when its mask covers
    at least ``gain`` times as much of the box. Background that crosses a side and runs into the
    box's centre (the water above a flying heron) passes the colour test too, but there the
    whole-image run keeps the object, and a crop would take the background in.
    """
    box = np.asarray(prompt.boxes[0], float)
    crop = crossed_side_crop(image, box, crossed_sides(image, box, threshold))
    if crop is None:
        return None
    h, w = image.shape[:2]
    x0, y0 = int(np.clip(np.floor(box[0]), 0, w)), int(np.clip(np.floor(box[1]), 0, h))
    x1, y1 = int(np.clip(np.ceil(box[2]), 0, w)), int(np.clip(np.ceil(box[3]), 0, h))
    whole = np.asarray(segment(image, prompt), bool)
    kept = whole[y0:y1, x0:x1].sum()
    if kept >= lost * max((y1 - y0) * (x1 - x0), 1):
        return whole
    cut = segment_cropped(segment, image, prompt, crop)
    return cut if cut[y0:y1, x0:x1].sum() >= gain * kept else whole


def segment_cropped(segment, image: np.ndarray, prompt, crop: tuple[int, int, int, int]) -> np.ndarray:
    """``segment(image[crop], prompt shifted into the crop)`` pasted back into an ``H×W`` bool mask."""
    x0, y0, x1, y1 = crop
    sub = image[y0:y1, x0:x1]
    mask = np.asarray(segment(sub, prompt.shifted(x0, y0, sub.shape[:2])), bool)
    out = np.zeros(image.shape[:2], bool)
    out[y0:y1, x0:x1] = mask
    return out
