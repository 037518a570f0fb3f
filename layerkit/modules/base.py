"""The interface of each stage role. A backend implements ``__call__`` with these shapes.

All arrays are numpy float32 in ``[0, 1]``, HWC; stages may use torch internally and move
themselves with ``to(device)``.

================  ==============================================  ==================================
role              call                                            returns
================  ==============================================  ==================================
generator         ``(text, *, height, width, seed)``              ``H×W×3`` image
grounder          ``(image, text)``                               :class:`Detections`
segmenter         ``(image, prompt)``                             ``H×W`` mask (bool or soft)
trimapper         ``(mask, image)``                               ``H×W`` trimap {0, 0.5, 1}
matter            ``(image, trimap)``                             ``H×W`` alpha
decomposer        ``(image, alpha, prompt=None)``                 ``(F H×W×3, B H×W×3)``
refiner           ``(image, alpha, foreground, background)``      ``(F, B)``
================  ==============================================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from layerkit.types import Prompt


@dataclass
class Detections:
    """Boxes found by a grounder, best first.

    Attributes:
        boxes: ``N×4`` xyxy pixel boxes.
        scores: ``N`` confidences in ``[0, 1]``.
        labels: ``N`` matched phrases.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)


@runtime_checkable
class Generator(Protocol):
    def __call__(self, text: str, *, height: int = 1024, width: int = 1024, seed: int | None = None) -> np.ndarray: ...


@runtime_checkable
class Grounder(Protocol):
    def __call__(self, image: np.ndarray, text: str) -> Detections: ...


@runtime_checkable
class Segmenter(Protocol):
    def __call__(self, image: np.ndarray, prompt: Prompt) -> np.ndarray: ...


@runtime_checkable
class Trimapper(Protocol):
    def __call__(self, mask: np.ndarray, image: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Matter(Protocol):
    def __call__(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Decomposer(Protocol):
    def __call__(self, image: np.ndarray, alpha: np.ndarray, prompt: Prompt | None = None) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class Refiner(Protocol):
    def __call__(self, image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                 background: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
