"""From a click to the whole object: keep the largest click mask that the box path gives back.

A click does not say how big its object is. GrabCut from a click (a disk of probable foreground
around it, the frame sure background) stops at the part under the click at one working size and
leaks into background of the object's colours at another (docs/benchmarks.md, "Point prompts:
where the click loses the object"): on real photos 640 px finds whole objects that 370 px cuts to a
part; on composites 640 px leaks. No single size, and no cue measured on the masks alone, picks the
right one. A second, independent segmentation does: the *box path* (several initialisations, the
vote, restoration of dropped parts) run on the box around a candidate mask, with the click as a
correction. A mask that is the object is a fixed point of it — the box around the object segments
back to the object — while a mask that leaked into the background is not: inside that box the
box path separates the object from the background it swallowed, and the two disagree.
:func:`select_click_mask` therefore segments the click at several working sizes, keeps the
candidates that the box path gives back (IoU ≥ ``min_iou``), and returns the box-path mask of the
largest of them: a part that is stable is kept only when no larger stable mask (the whole object)
exists. :func:`resegment_box` then segments the chosen box on its own region, as a user's box, and
keeps the better separated of the two masks; with no stable candidate :func:`locate_click` segments
the click again on the region around its mask, as the pipeline's point path does.
Used by :class:`~layerkit.modules.segmenter.grabcut.GrabCutSegmenter` (``point_select``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from layerkit.modules.segmenter.box_sides import segment_cropped
from layerkit.modules.segmenter.grabcut_parts import colour_separation
from layerkit.ops.masks import soft_iou
from layerkit.ops.roi import expand_box
from layerkit.types import Prompt

__all__ = ["locate_click", "padded_mask_box", "resegment_box", "select_click_mask"]


def padded_mask_box(mask: np.ndarray, pad: float, size: tuple[int, int]) -> np.ndarray | None:
    """``(x0, y0, x1, y1)`` of ``mask`` (``x1, y1`` exclusive) padded by ``pad`` × its long side, clipped to ``size`` ``(h, w)``."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    h, w = size
    p = pad * max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
    return np.array([max(0.0, xs.min() - p), max(0.0, ys.min() - p), min(float(w), xs.max() + 1 + p),
                     min(float(h), ys.max() + 1 + p)])


def select_click_mask(segment_click: Callable[[Prompt, int], np.ndarray], segment_box: Callable[[Prompt], np.ndarray],
                      prompt: Prompt, sides: Sequence[int], pad: float = 0.04,
                      min_iou: float = 0.8) -> tuple[np.ndarray, np.ndarray | None, list[dict]]:
    """The object of a points-only prompt, chosen among click masks at several working sizes.

    Args:
        segment_click: ``(prompt, working long side) → H×W bool``, GrabCut from the points alone.
        segment_box: ``Prompt → H×W bool``, the box path (box plus the points as corrections).
        prompt: the points-only prompt (``points`` ``N×2`` x, y; ``labels`` 1 / 0).
        sides: working long sides to segment the click at; the first one's mask is the fallback.
        pad: a candidate's box is its mask's box padded by this × its long side (the margin a user
            leaves around a box, as ``layerkit eval`` derives box prompts), holding every positive point.
        min_iou: a candidate is stable when the box path on its box gives it back with this IoU.

    Returns:
        ``(mask, box, trials)``: the ``H×W`` bool mask; the chosen candidate's box ``(x0, y0, x1, y1)``
        (None when no candidate was stable); per size a dict of ``side``, ``area`` (the click mask's
        pixel count), ``iou`` (with its box-path mask; None when empty) and ``chosen``.
    """
    if not sides:
        raise ValueError("select_click_mask needs at least one working size")
    points = np.asarray(prompt.points, np.float64)
    labels = np.asarray(prompt.labels)
    pos = points[labels == 1]
    trials: list[dict] = []
    best: tuple[dict, np.ndarray, np.ndarray] | None = None  # (trial, box-path mask, box) of the largest stable
    fallback = None
    for side in sides:
        click = np.asarray(segment_click(prompt, int(side)), bool)
        if fallback is None:
            fallback = click
        trial = {"side": int(side), "area": int(click.sum()), "iou": None, "chosen": False}
        trials.append(trial)
        box = padded_mask_box(click, pad, click.shape)
        if box is None:
            continue
        if pos.size:
            box = np.array([min(box[0], pos[:, 0].min()), min(box[1], pos[:, 1].min()),
                            max(box[2], pos[:, 0].max() + 1), max(box[3], pos[:, 1].max() + 1)])
        again = np.asarray(segment_box(Prompt(boxes=[box.tolist()], points=prompt.points, labels=prompt.labels)), bool)
        trial["iou"] = soft_iou(click, again, empty=0.0)
        if trial["iou"] >= min_iou and (best is None or trial["area"] > best[0]["area"]):
            best = (trial, again, box)
    assert fallback is not None
    if best is None:
        return fallback, None, trials
    best[0]["chosen"] = True
    return best[1], best[2], trials


def locate_click(segment: Callable[[np.ndarray, Prompt], np.ndarray], image: np.ndarray, click: np.ndarray,
                 prompt: Prompt, margin: float = 0.25, min_margin: int = 24) -> np.ndarray:
    """The click segmented again on the region around its mask (no stable candidate was found).

    What the pipeline's point path does with a plain segmenter (``pipeline.roi_margin`` 0.25,
    ``roi_min_margin`` 24): the region is the box of ``click`` and the points, grown by ``margin`` ×
    its long side (at least ``min_margin`` px); ``segment(region image, prompt shifted into it)``
    runs there and is pasted back. An empty ``click`` is returned as it is.
    """
    ys, xs = np.nonzero(click)
    if ys.size == 0:
        return click
    px, py = np.asarray(prompt.points, np.float64).T
    near = (int(min(xs.min(), px.min())), int(min(ys.min(), py.min())), int(max(xs.max(), px.max())) + 1,
            int(max(ys.max(), py.max())) + 1)
    return segment_cropped(segment, image, prompt, expand_box(near, image.shape[:2], margin, min_margin))


def resegment_box(segment: Callable[[np.ndarray, Prompt], np.ndarray], image: np.ndarray, mask: np.ndarray,
                  box: np.ndarray, prompt: Prompt, margin: float = 0.25, min_margin: int = 24) -> np.ndarray:
    """The chosen candidate's box segmented again as a user's box; the better-separated mask wins.

    ``mask`` is the box path's answer at the whole image's working size, where a small or thin
    object has few pixels; the same box on its region (the pipeline's region for a box prompt:
    grown by ``margin`` × its long side, at least ``min_margin`` px) is segmented at the region's
    working size, with the side band a user's box gets. The mask whose colours differ more from
    the ring around it (:func:`~layerkit.modules.segmenter.grabcut_parts.colour_separation`, the
    box path's own vote) is returned.
    """
    near = (int(box[0]), int(box[1]), int(np.ceil(box[2])), int(np.ceil(box[3])))
    again = segment_cropped(segment, image, Prompt(boxes=[list(map(float, box))], points=prompt.points,
                                                   labels=prompt.labels), expand_box(near, image.shape[:2], margin, min_margin))
    return again if colour_separation(image, again) > colour_separation(image, mask) else mask
