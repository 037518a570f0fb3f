"""Object proposals from a grounding model: generic phrases grounded, boxes suppressed (NMS).

Not iterative: every detection of the input becomes a box prompt, peeled in occlusion order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerkit.errors import ConfigError
from layerkit.modules.base import Candidate, Proposer
from layerkit.ops.boxes import Box, box_iou
from layerkit.types import Prompt

#: phrases grounded by default
GENERIC_PHRASES = "object . person . animal . thing ."


class GroundedProposer(Proposer):
    """Candidates from the pipeline's grounder run on generic phrases.

    Args:
        phrases: the grounding query (dot-separated phrases).
        min_score: weaker detections are dropped.
        nms_iou: a box overlapping a better one by this IoU or more is dropped.
        limit: most candidates.
    """

    iterative = False
    needs_grounder = True

    def __init__(self, phrases: str = GENERIC_PHRASES, min_score: float = 0.3, nms_iou: float = 0.7, limit: int = 19) -> None:
        self.phrases, self.min_score, self.nms_iou, self.limit = phrases, float(min_score), float(nms_iou), int(limit)

    def __call__(self, image: np.ndarray, grounder: Any = None) -> list[Candidate]:
        """Box candidates of ``image`` (``H×W×3``), best first.

        Raises:
            ConfigError: the pipeline has no grounder.
        """
        if grounder is None:
            raise ConfigError("proposer 'grounded' needs a grounding stage; set grounder.backend=grounding_dino|owlv2 "
                              "or use proposer.backend=saliency")
        prompts = grounded_prompts(grounder, image, self.phrases, self.min_score, self.nms_iou, self.limit)
        return [Candidate(None, tuple(int(v) for v in p.boxes[0]), float(len(prompts) - k))  # type: ignore[index,arg-type]
                for k, p in enumerate(prompts)]


def grounded_prompts(grounder: Any, image: np.ndarray, phrases: str = GENERIC_PHRASES, min_score: float = 0.3,
                     nms_iou: float = 0.7, limit: int = 19) -> list[Prompt]:
    """Box prompts from a grounder run on generic phrases (non-maximum suppressed, best first)."""
    det = grounder(image, phrases)
    order = np.argsort(-np.asarray(det.scores, np.float64))
    boxes: list[Box] = []
    for i in order:
        if det.scores[i] < min_score:
            break
        b = tuple(int(round(v)) for v in det.boxes[i])
        if all(box_iou(b, kept) < nms_iou for kept in boxes):  # type: ignore[arg-type]
            boxes.append(b)  # type: ignore[arg-type]
        if len(boxes) >= limit:
            break
    h, w = image.shape[:2]
    return [Prompt(boxes=[[max(0, b[0]), max(0, b[1]), min(w, b[2]), min(h, b[3])]]) for b in boxes if b[2] > b[0] and b[3] > b[1]]
