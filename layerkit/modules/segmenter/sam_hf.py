"""Segment Anything through transformers (``SamModel`` + ``SamProcessor``).

Same prompts and policy as the ``segment_anything`` backend (:func:`plan_queries`,
:func:`pick_best` in :mod:`layerkit.modules.segmenter.sam`): one query per box, all queries
batched in one decoder call, points and labels repeated for every box, a mask prompt passed as
its low-res logits. The processor resizes the image (longest side 1024 for the released
models), scales the coordinates, resizes the mask prompt to the decoder's mask size, and
:meth:`post_process_masks` brings the masks back to the input size.

Weights load on first use from a hub id in the local Hugging Face cache
(``facebook/sam-vit-huge``, ``…-large``, ``…-base``) or a local ``save_pretrained`` folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.errors import ConfigError
from layerkit.modules.base import Segmenter
from layerkit.modules.hub import PretrainedStage
from layerkit.ops.sam_prompts import MASK_LOGIT, MULTIMASK_MODES, pick_best, plan_queries
from layerkit.types import Prompt

if TYPE_CHECKING:
    import torch


class HFSamSegmenter(PretrainedStage, Segmenter):
    """Image + prompt → mask with transformers' ``SamModel``.

    Args:
        model: hub id (``facebook/sam-vit-huge``) or a local folder with the model and processor.
        multimask: ``auto``, ``always`` or ``never`` (see
            :func:`~layerkit.ops.sam_prompts.plan_queries`).
        refine_mask: refine a lone mask prompt with SAM instead of returning it unchanged.
        dtype: ``auto`` (bf16/fp16 on CUDA, fp32 on CPU), ``float32``, ``float16``, ``bfloat16``.

    Example:
        >>> seg = HFSamSegmenter("facebook/sam-vit-huge").to("cuda")
        >>> mask = seg(image, Prompt(points=[[250, 260]]))      # H×W bool
    """

    key = "segmenter.model"

    def __init__(self, model: str = "facebook/sam-vit-huge", multimask: str = "auto", refine_mask: bool = True,
                 dtype: str = "auto") -> None:
        super().__init__(model, dtype)
        if multimask not in MULTIMASK_MODES:
            raise ConfigError(f"segmenter.multimask must be one of {', '.join(MULTIMASK_MODES)}, got {multimask!r}")
        self.multimask = multimask
        self.refine_mask = refine_mask

    def _load(self, source: str, kwargs: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
        from transformers import SamModel, SamProcessor

        processor = SamProcessor.from_pretrained(source, **kwargs)
        model = SamModel.from_pretrained(source, dtype=dtype, **kwargs)
        return {"processor": processor, "model": model}

    crop_to_prompt = False  # the whole image is embedded once; every prompt of it reuses the embedding

    def _embed(self, image: np.ndarray) -> None:
        import torch

        from layerkit.io.image import to_uint8

        parts = self.loaded
        self._image8 = to_uint8(image)
        pixels = parts["processor"](images=self._image8, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            self._embedding = parts["model"].get_image_embeddings(pixels.to(self.device, self.torch_dtype))

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
        self.image  # noqa: B018 - raises when set_image was not called
        parts = self.loaded
        processor, model = parts["processor"], parts["model"]
        dtype = self.torch_dtype
        n = len(plan.boxes)
        kwargs: dict[str, Any] = {}
        if plan.boxes[0] is not None:
            kwargs["input_boxes"] = [[b.tolist() for b in plan.boxes]]  # type: ignore[union-attr]
        if plan.points is not None:
            kwargs["input_points"] = [[plan.points.tolist()] * n]
            kwargs["input_labels"] = [[plan.labels.tolist()] * n]  # type: ignore[union-attr]
        if plan.mask is not None:
            kwargs["segmentation_maps"] = plan.mask.astype(np.uint8)
        inputs = processor(images=self._image8, return_tensors="pt", **kwargs)  # prompt coordinates, resized mask
        feed: dict[str, torch.Tensor] = {"image_embeddings": self._embedding}
        for key in ("input_boxes", "input_points"):
            if key in inputs:
                feed[key] = inputs[key].to(self.device, dtype)
        if "input_labels" in inputs:
            feed["input_labels"] = inputs["input_labels"].to(self.device)
        if "labels" in inputs:  # the resized mask prompt → 1×1×S×S logits
            low_res = inputs["labels"].to(self.device, dtype)[:, None] * (2 * MASK_LOGIT) - MASK_LOGIT
            feed["input_masks"] = low_res
        with torch.inference_mode():
            out = model(**feed, multimask_output=plan.multimask)
        masks = processor.post_process_masks(out.pred_masks.float().cpu(), inputs["original_sizes"],
                                             inputs["reshaped_input_sizes"])[0]  # queries × C × H × W
        scores = out.iou_scores[0].float().cpu().numpy()  # queries × C
        return pick_best(list(masks.numpy()), list(scores))
