"""Segment Anything (the ``segment_anything`` package's predictor) from boxes, points and masks.

The architecture is built with ``sam_model_registry[model_type](checkpoint=None)`` and the
weights are loaded separately with ``torch.load(..., map_location="cpu", weights_only=True)``,
so a CPU-only machine loads a CUDA-saved checkpoint. The module also holds the prompt glue
shared with the transformers backend (:mod:`layerkit.modules.segmentation.sam_hf`):

* :func:`plan_queries` — one SAM query per box (their masks are united), points and labels
  sent with every query, a lone mask prompt refined through its bounding box plus its low-res
  logits; multimask output for a single point only (``multimask="auto"``);
* :func:`pick_best` — per query, the candidate mask with the highest predicted IoU;
* :func:`mask_logits` — an ``H×W`` mask as SAM's low-res mask input (longest side resized to
  ``side``, padded bottom/right, ±:data:`MASK_LOGIT`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from layerkit.errors import ConfigError
from layerkit.modules.hub import PretrainedStage, missing_file
from layerkit.types import Prompt

if TYPE_CHECKING:
    import torch

#: Values of the ``multimask`` option.
MULTIMASK_MODES = ("auto", "always", "never")
#: Logit magnitude of a binary mask given to SAM as a mask prompt.
MASK_LOGIT = 10.0
CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


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


class SamSegmenter(PretrainedStage):
    """Image + prompt → mask with the original Segment Anything predictor.

    Args:
        checkpoint: ``.pth`` state dict (``sam_vit_h_4b8939.pth``, ``sam_vit_l_0b3195.pth``,
            ``sam_vit_b_01ec64.pth`` from ``dl.fbaipublicfiles.com/segment_anything/``).
        model_type: key of ``segment_anything.sam_model_registry`` matching the checkpoint
            (``vit_h``, ``vit_l``, ``vit_b``).
        multimask: ``auto``, ``always`` or ``never`` (see :func:`plan_queries`).
        refine_mask: refine a lone mask prompt with SAM instead of returning it unchanged.

    Example:
        >>> seg = SamSegmenter("~/models/sam_vit_h_4b8939.pth").to("cuda")
        >>> mask = seg(image, Prompt(boxes=[[120, 40, 380, 500]]))   # H×W bool
    """

    key = "segmenter.checkpoint"

    def __init__(self, checkpoint: str = "sam_vit_h_4b8939.pth", model_type: str = "vit_h", multimask: str = "auto",
                 refine_mask: bool = True) -> None:
        super().__init__(checkpoint, "float32")
        from segment_anything import sam_model_registry

        if model_type not in sam_model_registry:
            raise ConfigError(f"unknown segmenter.model_type {model_type!r}; valid: {', '.join(sorted(sam_model_registry))}")
        if multimask not in MULTIMASK_MODES:
            raise ConfigError(f"segmenter.multimask must be one of {', '.join(MULTIMASK_MODES)}, got {multimask!r}")
        self.model_type = model_type
        self.multimask = multimask
        self.refine_mask = refine_mask

    def missing_weights(self) -> list[str]:
        return missing_file(self.model, self.key, f"download it from {CHECKPOINT_URL}")

    def _source(self) -> tuple[str, dict[str, Any]]:
        from layerkit.errors import MissingModelError

        reasons = self.missing_weights()
        if reasons:
            raise MissingModelError(reasons[0])
        return os.path.expanduser(self.model), {}

    def _load(self, source: str, kwargs: dict[str, Any], dtype: "torch.dtype") -> dict[str, Any]:
        import torch
        from segment_anything import SamPredictor, sam_model_registry

        sam = sam_model_registry[self.model_type](checkpoint=None)
        state = torch.load(source, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
        return {"model": sam, "predictor": SamPredictor(sam)}

    def __call__(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """Segment the object.

        Args:
            image: ``H×W×3`` float32 RGB in ``[0, 1]``.
            prompt: boxes / points / mask in this image's pixels.

        Returns:
            ``H×W`` bool mask.
        """
        import torch

        from layerkit.io.image import to_uint8

        plan = plan_queries(prompt, self.multimask, self.refine_mask)
        if plan is None:
            return np.asarray(prompt.mask, bool)
        predictor = self.loaded["predictor"]
        masks, scores = [], []
        with torch.inference_mode():
            predictor.set_image(to_uint8(image), image_format="RGB")
            side = predictor.model.prompt_encoder.mask_input_size[0]
            low_res = None if plan.mask is None else mask_logits(plan.mask, side)
            for box in plan.boxes:
                m, s, _ = predictor.predict(point_coords=plan.points, point_labels=plan.labels, box=box,
                                            mask_input=low_res, multimask_output=plan.multimask)
                masks.append(m)
                scores.append(s)
        return pick_best(masks, scores)
