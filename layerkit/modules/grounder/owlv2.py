"""Open-vocabulary boxes from phrases with OWLv2 (transformers).

Each phrase of the text (separated by ``.``, ``,`` or ``;``) is one query; a box's score is its
best query probability and its label that query. OWLv2's processor pads the image to a square
at the bottom/right, and its post-processing maps the boxes back to the original pixels.

Weights load on first use from a local folder or a hub id found in the local Hugging Face
cache (:mod:`layerkit.modules.hub`); the folder must hold an ``Owlv2ForObjectDetection`` and its
processor, as written by ``save_pretrained``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.modules.base import Detections, Grounder
from layerkit.modules.grounder.phrases import detector_forward, split_queries, to_detections
from layerkit.modules.hub import PretrainedStage

if TYPE_CHECKING:
    import torch


class Owlv2Grounder(PretrainedStage, Grounder):
    """Image + phrase(s) → boxes (OWLv2).

    Args:
        model: hub id (``google/owlv2-base-patch16-ensemble``, ``…-large-…``) or a local folder.
        box_threshold: keep boxes whose best query probability exceeds this, in ``[0, 1]``.
        nms_iou: drop a box overlapping a better one by more than this IoU (``1``: keep all).
        max_detections: keep at most this many boxes.
        dtype: ``auto`` (bf16/fp16 on CUDA, fp32 on CPU), ``float32``, ``float16``, ``bfloat16``.

    Example:
        >>> det = Owlv2Grounder()(image, "glass. water")
        >>> det.labels                          # e.g. ['glass', 'water', ...], best first
    """

    key = "grounder.model"

    def __init__(self, model: str = "google/owlv2-base-patch16-ensemble", box_threshold: float = 0.15,
                 nms_iou: float = 0.5, max_detections: int = 20, dtype: str = "auto") -> None:
        super().__init__(model, dtype)
        if not 0.0 <= box_threshold <= 1.0:
            raise ValueError(f"grounder.box_threshold must be in [0, 1], got {box_threshold}")
        self.box_threshold = box_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections

    def _load(self, source: str, kwargs: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
        from transformers import AutoProcessor, Owlv2ForObjectDetection

        processor = AutoProcessor.from_pretrained(source, **kwargs)
        model = Owlv2ForObjectDetection.from_pretrained(source, dtype=dtype, **kwargs)
        return {"processor": processor, "model": model}

    def __call__(self, image: np.ndarray, text: str) -> Detections:
        """Find the phrases of ``text`` in ``image``.

        Args:
            image: ``H×W×3`` float32 RGB in ``[0, 1]``.
            text: one phrase, or several separated by ``.``/``,``/``;``.

        Returns:
            :class:`Detections` best first: ``N×4`` xyxy pixel boxes, ``N`` scores in ``[0, 1]``,
            ``N`` matched phrases.
        """
        queries = split_queries(text)
        parts = self.loaded
        processor = parts["processor"]
        h, w = image.shape[:2]
        out, _ = detector_forward(processor, parts["model"], image, self.device, self.torch_dtype, [queries])
        res = processor.post_process_grounded_object_detection(
            out, threshold=self.box_threshold, target_sizes=[(h, w)], text_labels=[queries])[0]
        return to_detections(res["boxes"].cpu().numpy(), res["scores"].cpu().numpy(), list(res["text_labels"]),
                             (h, w), self.nms_iou, self.max_detections)
