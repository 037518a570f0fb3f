"""Prompt glue shared by the two Segment Anything backends (``sam`` and ``sam_hf``).

* :func:`plan_queries` — one SAM query per box (their masks are united), points and labels
  sent with every query, a lone mask prompt refined through its bounding box plus its low-res
  logits; multimask output for a single point only (``multimask="auto"``);
* :func:`pick_best` — per query, the candidate mask with the highest predicted IoU;
* :func:`mask_logits` — an ``H×W`` mask as SAM's low-res mask input (longest side resized to
  ``side``, padded bottom/right, ±:data:`MASK_LOGIT`).

Pure numpy (OpenCV for resizing): stages import it, it imports no stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from layerkit.errors import ConfigError
from layerkit.types import Prompt

#: Values of the ``multimask`` option.
MULTIMASK_MODES = ("auto", "always", "never")
#: Logit magnitude of a binary mask given to SAM as a mask prompt.
MASK_LOGIT = 10.0


@dataclass
class SamQuery:
    """What to send SAM for one prompt.

    Attributes:
        boxes: one entry per query, a ``4`` xyxy box or None (no box).
        points: ``N×2`` xy pixel points or None.
        labels: ``N`` labels (1 object, 0 not object) or None.
        mask: ``H×W`` bool mask prompt or None.
        multimask: ask for three candidates per query and keep the best.
    """

    boxes: list[np.ndarray | None]
    points: np.ndarray | None
    labels: np.ndarray | None
    mask: np.ndarray | None
    multimask: bool


def plan_queries(prompt: Prompt, multimask: str = "auto", refine_mask: bool = True) -> SamQuery | None:
    """Turn a prompt into SAM queries; None means "use the mask prompt as it is".

    Args:
        prompt: spatial prompt in image pixels (boxes xyxy, points xy, mask ``H×W``).
        multimask: ``auto`` (three candidates only for a single point without box or mask, where
            SAM's answer is ambiguous), ``always`` or ``never``.
        refine_mask: with a mask as the only prompt, refine it with SAM (its bounding box plus its
            logits) instead of returning it unchanged.

    Raises:
        PromptError: the prompt has no spatial part (text must be grounded first).
    """
    from layerkit.errors import PromptError

    if multimask not in MULTIMASK_MODES:
        raise ConfigError(f"segmenter.multimask must be one of {', '.join(MULTIMASK_MODES)}, got {multimask!r}")
    if not prompt.has_spatial:
        raise PromptError("SAM needs a box, point(s) or a mask; ground the text prompt first")
    mask_only = prompt.mask is not None and prompt.boxes is None and prompt.points is None
    if mask_only and not refine_mask:
        return None
    if prompt.boxes is not None:
        boxes: list[np.ndarray | None] = [np.asarray(b, np.float64) for b in prompt.boxes]
    elif mask_only:
        boxes = [np.asarray(prompt.bbox(), np.float64)]
    else:
        boxes = [None]
    single_point = prompt.boxes is None and prompt.mask is None and prompt.points is not None and len(prompt.points) == 1
    multi = multimask == "always" or (multimask == "auto" and single_point)
    return SamQuery(boxes=boxes, points=prompt.points, labels=prompt.labels, mask=prompt.mask, multimask=multi)


def pick_best(masks: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> np.ndarray:
    """Union over queries of each query's best-scoring candidate.

    Args:
        masks: per query, ``C×H×W`` candidate masks (bool or logits > 0).
        scores: per query, ``C`` predicted IoUs.

    Returns:
        ``H×W`` bool mask.
    """
    out: np.ndarray | None = None
    for m, s in zip(masks, scores):
        best = np.asarray(m)[int(np.argmax(np.asarray(s, np.float64)))] > 0
        out = best if out is None else out | best
    if out is None:
        raise ValueError("pick_best needs at least one query")
    return out


def mask_logits(mask: np.ndarray, side: int) -> np.ndarray:
    """An ``H×W`` mask as SAM's ``1×side×side`` low-res mask input.

    The mask is resized so its longer side is ``side`` (as SAM resizes images), padded at the
    bottom/right with "background", and mapped to ``±MASK_LOGIT``.
    """
    import cv2

    h, w = mask.shape
    k = side / max(h, w)
    nh, nw = max(1, int(h * k + 0.5)), max(1, int(w * k + 0.5))
    small = cv2.resize(np.asarray(mask, np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((1, side, side), -MASK_LOGIT, np.float32)
    out[0, :nh, :nw] = np.where(small >= 0.5, MASK_LOGIT, -MASK_LOGIT)
    return out
