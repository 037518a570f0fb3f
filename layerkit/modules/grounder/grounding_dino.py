"""Open-vocabulary boxes from a phrase with Grounding DINO (transformers).

The phrase is written as Grounding DINO's caption (lower case, each phrase ending with ``"."``,
see :func:`~layerkit.modules.grounder.phrases.grounding_caption`); a query's score is its
best token probability, and a box is kept when that score exceeds ``box_threshold``. The label
of a box is the caption's words whose probability exceeds ``text_threshold``.

Weights load on first use from a local folder or a hub id found in the local Hugging Face
cache (:mod:`layerkit.modules.hub`); the folder must hold a ``GroundingDinoForObjectDetection``
and its processor, as written by ``save_pretrained``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.modules.base import Detections, Grounder
from layerkit.modules.grounder.phrases import detector_forward, grounding_caption, to_detections
from layerkit.modules.hub import PretrainedStage

if TYPE_CHECKING:
    import torch


class GroundingDinoGrounder(PretrainedStage, Grounder):
    """Image + phrase → boxes (Grounding DINO).

    Args:
        model: hub id (``IDEA-Research/grounding-dino-base``, ``…-tiny``) or a local folder.
        box_threshold: keep queries whose best token probability exceeds this, in ``[0, 1]``.
        text_threshold: a caption token is part of a box's label above this probability.
        nms_iou: drop a box overlapping a better one by more than this IoU (``1``: keep all).
        max_detections: keep at most this many boxes.
        dtype: ``float32`` (default: box quality first; the model is small), ``auto`` (bf16/fp16 on
            CUDA, fp32 on CPU), ``float16``, ``bfloat16``.

    Example:
        >>> det = GroundingDinoGrounder().to("cuda")(image, "a bird flying")
        >>> det.boxes[0], det.scores[0]        # best box (xyxy, pixels) and its score
    """

    key = "grounder.model"

    def __init__(self, model: str = "IDEA-Research/grounding-dino-base", box_threshold: float = 0.3,
                 text_threshold: float = 0.25, nms_iou: float = 0.7, max_detections: int = 20, dtype: str = "float32") -> None:
        super().__init__(model, dtype)
        for name, v in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"grounder.{name} must be in [0, 1], got {v}")
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections

    def _load(self, source: str, kwargs: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        processor = AutoProcessor.from_pretrained(source, **kwargs)
        model = GroundingDinoForObjectDetection.from_pretrained(source, dtype=dtype, **kwargs)
        return {"processor": processor, "model": model}

    def __call__(self, image: np.ndarray, text: str) -> Detections:
        """Find ``text`` in ``image``.

        Args:
            image: ``H×W×3`` float32 RGB in ``[0, 1]``.
            text: one phrase (``"the white horse"``) or several separated by ``.``/``,``.

        Returns:
            :class:`Detections` best first: ``N×4`` xyxy pixel boxes, ``N`` scores in ``[0, 1]``,
            ``N`` matched phrases.
        """
        caption = grounding_caption(text)
        parts = self.loaded
        processor = parts["processor"]
        h, w = image.shape[:2]
        out, inputs = detector_forward(processor, parts["model"], image, self.device, self.torch_dtype, caption)
        res = processor.post_process_grounded_object_detection(
            out, inputs["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
            target_sizes=[(h, w)])[0]
        labels = [_clean_label(str(t), processor.tokenizer.all_special_tokens) or caption.rstrip(".")
                  for t in res["text_labels"]]
        return to_detections(res["boxes"].cpu().numpy(), res["scores"].cpu().numpy(), labels, (h, w),
                             self.nms_iou, self.max_detections)


def _clean_label(label: str, special: list[str]) -> str:
    """``"a bird flying. [SEP]"`` → ``"a bird flying"`` (special tokens and separators removed)."""
    for tok in special:
        label = label.replace(tok, " ")
    return " ".join(label.replace(".", " ").split())
