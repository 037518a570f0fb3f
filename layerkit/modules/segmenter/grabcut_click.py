"""From a click to the whole object: grow a box around GrabCut's mask until the object stops at it.

From a positive point alone GrabCut starts a disk around the click as "probably foreground" and
the rest of the picture as "probably background"; its background colour model then learns the
object's other parts (a teddy bear's sweater under its head) and the mask stops at the part under
the click. The box path (several initialisations, vote, restoration of dropped parts) does not
have that bias, but needs a box. :func:`grow_box_from_click` derives one: the box of the click's
mask, padded, is segmented as a box prompt with the click as a correction; where the new mask
still runs into a box side (the object continues past it) that side moves out, up to ``rounds``
times. Used by :class:`~layerkit.modules.segmenter.grabcut.GrabCutSegmenter` (``point_grow``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from layerkit.modules.segmenter.grabcut_parts import keep_pointed_components
from layerkit.types import Prompt

__all__ = ["grow_box_from_click", "padded_mask_box", "touched_sides"]


def padded_mask_box(mask: np.ndarray, pad: float, size: tuple[int, int]) -> np.ndarray | None:
    """``(x0, y0, x1, y1)`` of ``mask`` (``x1, y1`` exclusive) padded by ``pad`` × its long side, clipped to ``size`` ``(h, w)``."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    h, w = size
    p = pad * max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
    return np.array([max(0.0, xs.min() - p), max(0.0, ys.min() - p), min(float(w), xs.max() + 1 + p),
                     min(float(h), ys.max() + 1 + p)])


def touched_sides(mask: np.ndarray, box: np.ndarray, rim: int = 2, min_run: float = 0.1) -> list[int]:
    """Sides of ``box`` (0 left, 1 top, 2 right, 3 bottom) not on the frame that ``mask`` runs into.

    A side counts when the mask covers at least ``min_run`` of its length within ``rim`` pixels inside it.
    """
    h, w = mask.shape
    x0, y0 = int(box[0]), int(box[1])
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    sides = []
    strips = ((x0 > 0, mask[y0:y1, x0:x0 + rim].any(1)), (y0 > 0, mask[y0:y0 + rim, x0:x1].any(0)),
              (x1 < w, mask[y0:y1, max(x0, x1 - rim):x1].any(1)), (y1 < h, mask[max(y0, y1 - rim):y1, x0:x1].any(0)))
    for i, (inside, strip) in enumerate(strips):
        if inside and strip.size and strip.mean() >= min_run:
            sides.append(i)
    return sides


def grow_box_from_click(segment: Callable[[Prompt], np.ndarray], click_mask: np.ndarray, prompt: Prompt,
                        pad: float = 0.15, rounds: int = 2, step: float = 0.25, keep: float = 0.8) -> np.ndarray:
    """The object of a point prompt, segmented through the box path.

    Args:
        segment: ``Prompt → H×W bool`` box-path segmentation (box plus the points as corrections).
        click_mask: ``H×W`` bool, GrabCut's mask from the points alone.
        prompt: the points-only prompt (``points`` ``N×2`` x, y; ``labels`` 1 / 0).
        pad: the first box is the click mask's box padded by this × its long side.
        rounds: how many times a side the mask runs into moves out.
        step: how far a side moves, as a fraction of the box's size along that axis.
        keep: a wider box's mask is taken only if it keeps this fraction of the last one (else
            GrabCut collapsed on it and the last mask stays); every mask must hold the positive points.

    Returns:
        ``H×W`` bool; the connected parts holding a positive point (``click_mask`` when no box can be made).
    """
    h, w = click_mask.shape
    box = padded_mask_box(click_mask, pad, (h, w))
    if box is None:
        return click_mask
    pos = np.asarray(prompt.points, np.float64)[np.asarray(prompt.labels) == 1]
    if pos.size:  # the box holds every positive click
        box = np.array([min(box[0], pos[:, 0].min()), min(box[1], pos[:, 1].min()),
                        max(box[2], pos[:, 0].max() + 1), max(box[3], pos[:, 1].max() + 1)])
    mask = click_mask
    on = np.clip(np.round(pos).astype(int), 0, [w - 1, h - 1])
    for r in range(rounds + 1):
        got = segment(Prompt(boxes=[box.tolist()], points=prompt.points, labels=prompt.labels))
        got = keep_pointed_components(got, np.asarray(prompt.points), np.asarray(prompt.labels))
        if not got[on[:, 1], on[:, 0]].all():  # lost the clicked object
            break
        if r and (got & mask).sum() < keep * mask.sum():  # a wider box made GrabCut collapse: keep the last mask
            break
        mask = got
        sides = touched_sides(mask, box)
        if not sides or r == rounds:
            break
        bw, bh = box[2] - box[0], box[3] - box[1]
        grow = np.array([-step * bw, -step * bh, step * bw, step * bh])
        for s in sides:
            box[s] += grow[s]
        box = np.clip(box, 0, [w, h, w, h])
    return mask
