"""The stage contract: one :class:`Stage` base, one abstract base per role.

Every backend subclasses its role's base (``class GrabCutSegmenter(Segmenter)``). The base gives
each stage, also one built by hand, the same surface:

* :attr:`Stage.init_args` / :meth:`Stage.config` — the constructor arguments that rebuild it (the
  shape of diffusers' ``register_to_config``: recorded when the object is created, nothing to call);
* :meth:`Stage.to` — move to a torch device (a no-op for weight-free stages);
* :meth:`Stage.missing_weights` — one line per model that is not available (``[]`` when none is needed);
* :meth:`Stage.manual_seed` — the pipeline's seed, set before every run; stochastic stages read
  :attr:`Stage.seed`.

All arrays are numpy float32 in ``[0, 1]``, HWC; stages may use torch internally.

================  ==============================================  ==================================
role              call                                            returns
================  ==============================================  ==================================
generator         ``(text, *, height, width, seed)``              ``H×W×3`` image
grounder          ``(image, text)``                               :class:`Detections`
segmenter         ``set_image(image)`` then ``predict(prompt)``   ``H×W`` mask (bool or soft)
trimapper         ``(mask, image)``                               ``H×W`` trimap {0, 0.5, 1}
matter            ``(image, trimap)``                             ``H×W`` alpha
decomposer        ``(image, alpha, prompt=None)``                 ``(F H×W×3, B H×W×3)``
refiner           ``(image, alpha, foreground, background)``      ``(F, B)``
multilayer        ``(image, ...)``                                a :class:`~layerkit.types.LayerStack`
proposer          ``(image, grounder=None)``                      list of :class:`Candidate`, best first
orderer           ``(image, alphas, prompts)``                    object indices, front-most first
================  ==============================================  ==================================
"""

from __future__ import annotations

import abc
import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, ClassVar

import numpy as np

from layerkit.types import Prompt


class Stage:
    """Base of every stage. Records the constructor arguments of each instance.

    Attributes:
        role: the registry role the stage serves (set by the role's base class).
        seed: the seed stochastic stages draw from (set by :meth:`manual_seed`; 0 by default).

    Example:
        >>> m = ClosedFormMatter(radius=2)
        >>> m.config()
        {'backend': 'closed_form', 'radius': 2, 'epsilon': 1e-07, ...}
    """

    role: ClassVar[str] = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Stage:
        self = super().__new__(cls)
        try:  # unpickling and copying call __new__ without arguments: the state comes back with __dict__
            bound = inspect.signature(cls.__init__).bind(self, *args, **kwargs)
        except TypeError:
            return self
        bound.apply_defaults()
        recorded: dict[str, Any] = {}
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or name not in bound.arguments:
                continue
            if param.kind == param.VAR_KEYWORD:
                recorded.update(bound.arguments[name])
            elif param.kind != param.VAR_POSITIONAL:
                recorded[name] = bound.arguments[name]
        self.__dict__["_init_args"] = recorded
        self.__dict__.setdefault("seed", 0)
        return self

    @property
    def init_args(self) -> dict[str, Any]:
        """The keyword arguments this instance was constructed with, defaults filled in (a copy)."""
        return dict(self.__dict__.get("_init_args", {}))

    def config(self) -> dict[str, Any]:
        """The config section that rebuilds this stage: ``{"backend": name, **arguments}``.

        ``backend`` is the registry name when the class is registered for :attr:`role`, else its
        import path (``"my_pkg.stages:MySegmenter"``). Values are plain YAML types (tuples become
        lists, paths strings).

        Raises:
            ConfigError: an argument has no YAML form (an object passed to the constructor).
        """
        from layerkit.errors import ConfigError
        from layerkit.registry import backend_name

        out: dict[str, Any] = {"backend": backend_name(self.role, type(self))}
        for key, value in self.init_args.items():
            try:
                out[key] = _plain(value)
            except TypeError:
                raise ConfigError(f"{self.role}.{key} of {type(self).__name__} is a {type(value).__name__}, which a "
                                  "YAML config cannot hold; pass a path or a plain value instead") from None
        return out

    def to(self, device: str) -> Stage:
        """Move to ``device``; weight-free stages have nothing to move."""
        return self

    def missing_weights(self) -> list[str]:
        """One line per model this stage needs that is not available offline; ``[]`` when none."""
        return []

    def manual_seed(self, seed: int) -> None:
        """Seed the stage's random draws (the pipeline calls it with ``pipeline.seed`` before each run)."""
        self.seed = int(seed)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.init_args.items())
        return f"{type(self).__name__}({args})"


def _plain(value: Any) -> Any:
    """A YAML-safe copy of ``value``; ``TypeError`` for objects without one."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(type(value).__name__)


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


@dataclass
class Candidate:
    """An object found without a prompt (by a :class:`Proposer`).

    Attributes:
        mask: ``H×W`` bool at the image's size, or None (a box-only proposal).
        box: ``(x0, y0, x1, y1)`` pixels, exclusive ends.
        score: ranking score; higher first.
        contrast: how much the object stands out (the saliency proposer's ΔE; 0 when unknown).
    """

    mask: np.ndarray | None
    box: tuple[int, int, int, int]
    score: float
    contrast: float = 0.0

    def prompt(self) -> Prompt:
        """The prompt that peels it: with a mask, the mask plus one positive point at its most
        interior pixel (so GrabCut refines it); else the box."""
        if self.mask is None:
            return Prompt(boxes=[list(self.box)])
        import cv2

        dist = cv2.distanceTransform(self.mask.astype(np.uint8), cv2.DIST_L2, 3)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return Prompt(mask=self.mask, points=[[float(x), float(y)]], labels=[1])


class Generator(Stage, abc.ABC):
    role = "generator"

    @abc.abstractmethod
    def __call__(self, text: str, *, height: int = 1024, width: int = 1024, seed: int | None = None) -> np.ndarray:
        """Text → ``H×W×3`` float32 RGB in ``[0, 1]``."""


class Grounder(Stage, abc.ABC):
    role = "grounder"

    @abc.abstractmethod
    def __call__(self, image: np.ndarray, text: str) -> Detections:
        """``H×W×3`` image + phrase → boxes, best first."""


def image_key(image: np.ndarray) -> str:
    """A fingerprint of an image's pixels (shape, dtype and a BLAKE2 digest of the bytes)."""
    a = np.ascontiguousarray(image)
    return f"{a.shape}:{a.dtype}:{hashlib.blake2b(memoryview(a).cast('B'), digest_size=16).hexdigest()}"


class Segmenter(Stage, abc.ABC):
    """Image + prompt → mask, in two steps as segment-anything's predictor: :meth:`set_image`
    (the costly per-image work, e.g. an image embedding) once, then :meth:`predict` per prompt.

    Attributes:
        crop_to_prompt: the pipeline may hand this segmenter only the prompt's region plus a margin
            (its cost follows the area: GrabCut). Learned segmenters that resize the whole image
            anyway set it False, so that one embedding serves every object of the image.
        embeddings_computed: how many times :meth:`set_image` did the per-image work.
    """

    role = "segmenter"
    crop_to_prompt: ClassVar[bool] = True

    def set_image(self, image: np.ndarray) -> None:
        """Prepare ``image`` (``H×W×3`` float32 in ``[0, 1]``) for :meth:`predict`.

        The work is done once per distinct image: calling it again with the same pixels is free.
        """
        key = image_key(image)
        if key == self.__dict__.get("_image_key"):
            return
        self._embed(image)
        self._image = image
        self._image_key = key
        self.embeddings_computed = self.__dict__.get("embeddings_computed", 0) + 1

    def _embed(self, image: np.ndarray) -> None:
        """The per-image work (nothing for weight-free segmenters)."""

    @property
    def image(self) -> np.ndarray:
        """The image set by :meth:`set_image`.

        Raises:
            RuntimeError: no image set yet.
        """
        img = self.__dict__.get("_image")
        if img is None:
            raise RuntimeError(f"{type(self).__name__}.predict called before set_image(image)")
        return img

    @abc.abstractmethod
    def predict(self, prompt: Prompt) -> np.ndarray:
        """The ``H×W`` mask (bool or soft in ``[0, 1]``) of the prompted object in the current image."""

    def __call__(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """``set_image(image)`` then ``predict(prompt)``."""
        self.set_image(image)
        return self.predict(prompt)


class Trimapper(Stage, abc.ABC):
    """Mask (+ image) → trimap.

    Attributes:
        transparency_prompt: a phrase for which the pipeline asks its grounder for boxes of
            see-through material, passed as ``transparent_boxes`` (MatteAnything); ``None``: no
            such pass.
    """

    role = "trimapper"
    transparency_prompt: str | None = None

    @abc.abstractmethod
    def __call__(self, mask: np.ndarray, image: np.ndarray, transparent_boxes: np.ndarray | None = None) -> np.ndarray:
        """``H×W`` mask + ``H×W×3`` image → ``H×W`` trimap with values {0, 0.5, 1}."""


class Matter(Stage, abc.ABC):
    role = "matter"

    @abc.abstractmethod
    def __call__(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """``H×W×3`` image + ``H×W`` trimap → ``H×W`` alpha in ``[0, 1]``."""


class Decomposer(Stage, abc.ABC):
    role = "decomposer"

    @abc.abstractmethod
    def __call__(self, image: np.ndarray, alpha: np.ndarray, prompt: Prompt | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``H×W×3`` composite + ``H×W`` alpha → ``(F, B)``, each ``H×W×3``; B complete."""


class Refiner(Stage, abc.ABC):
    role = "refiner"

    @abc.abstractmethod
    def __call__(self, image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                 background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Restore detail of ``(F, B)`` from the composite; returns the refined ``(F, B)``."""


class MultiLayer(Stage, abc.ABC):
    """Image → a whole layer stack in one call (Qwen-Image-Layered)."""

    role = "multilayer"


class Proposer(Stage, abc.ABC):
    """Image → object candidates, for the automatic multi-layer mode.

    Attributes:
        iterative: True → the pipeline peels the best candidate and asks again on the completed
            background (saliency); False → every candidate of the input is peeled (detectors).
        needs_grounder: True → it runs the pipeline's grounder (whose weights the pipeline then
            checks before the automatic mode starts).
    """

    role = "proposer"
    iterative: ClassVar[bool] = False
    needs_grounder: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, image: np.ndarray, grounder: Grounder | None = None) -> list[Candidate]:
        """``H×W×3`` image (and the pipeline's grounder, for proposers that need one) → candidates, best first."""


class Orderer(Stage, abc.ABC):
    """Objects segmented on one image → their front-to-back order."""

    role = "orderer"

    @abc.abstractmethod
    def __call__(self, image: np.ndarray, alphas: list[np.ndarray], prompts: list[Prompt | None]) -> list[int]:
        """``H×W×3`` image + each object's ``H×W`` alpha and prompt → object indices, front-most first."""


class Effects(Stage, abc.ABC):
    """Role ``effects``: ``(image, α, F, B, prompt)`` → ``(α', F', B')`` on the canvas (the object
    layer with its visual effects, the cleaned background)."""

    role = "effects"

    @abc.abstractmethod
    def __call__(self, image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray, background: np.ndarray,
                 prompt: Prompt | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Move the object's effects into its layer; see :class:`~layerkit.modules.effects.shadow_reflection.ShadowReflectionEffects`."""


class Completer(Stage, abc.ABC):
    """A finished stack → the same stack with each layer's hidden part completed (composite unchanged)."""

    role = "completion"

    @abc.abstractmethod
    def __call__(self, stack: Any) -> Any:
        """Bottom → top :class:`~layerkit.types.LayerStack` → a new one of the same layers, completed."""
