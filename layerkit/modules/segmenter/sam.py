"""Segment Anything (the ``segment_anything`` package's predictor) from boxes, points and masks.

The architecture is built with ``sam_model_registry[model_type](checkpoint=None)`` and the
weights are loaded separately with ``torch.load(..., map_location="cpu", weights_only=True)``,
so a CPU-only machine loads a CUDA-saved checkpoint. The prompt glue it shares with the
transformers backend (:mod:`layerkit.modules.segmenter.sam_hf`) lives in
:mod:`layerkit.ops.sam_prompts`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.errors import ConfigError
from layerkit.modules.base import Segmenter
from layerkit.modules.hub import PretrainedStage, missing_file
from layerkit.ops.sam_prompts import MULTIMASK_MODES, mask_logits, pick_best, plan_queries
from layerkit.types import Prompt

if TYPE_CHECKING:
    import torch

CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


class SamSegmenter(PretrainedStage, Segmenter):
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

    def _load(self, source: str, kwargs: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
        import torch
        from segment_anything import SamPredictor, sam_model_registry

        sam = sam_model_registry[self.model_type](checkpoint=None)
        state = torch.load(source, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
        return {"model": sam, "predictor": SamPredictor(sam)}

    crop_to_prompt = False  # the whole image is embedded once; every prompt of it reuses the embedding

    def _embed(self, image: np.ndarray) -> None:
        import torch

        from layerkit.io.image import to_uint8

        with torch.inference_mode():
            self.loaded["predictor"].set_image(to_uint8(image), image_format="RGB")

    def predict(self, prompt: Prompt) -> np.ndarray:
        """Segment the object in the image of :meth:`set_image` (``H×W×3`` float32 RGB in ``[0, 1]``).

        Args:
            prompt: boxes / points / mask in this image's pixels.

        Returns:
            ``H×W`` bool mask.
        """
        import torch

        plan = plan_queries(prompt, self.multimask, self.refine_mask)
        if plan is None:
            return np.asarray(prompt.mask, bool)
        predictor = self.loaded["predictor"]
        masks, scores = [], []
        with torch.inference_mode():
            side = predictor.model.prompt_encoder.mask_input_size[0]
            low_res = None if plan.mask is None else mask_logits(plan.mask, side)
            for box in plan.boxes:
                m, s, _ = predictor.predict(point_coords=plan.points, point_labels=plan.labels, box=box,
                                            mask_input=low_res, multimask_output=plan.multimask)
                masks.append(m)
                scores.append(s)
        return pick_best(masks, scores)
