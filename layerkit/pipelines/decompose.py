"""The decomposition pipeline: image + prompt → background layer + object layer.

The pipeline is wiring only: it loads the image, checks the prompt, picks the region of
interest, calls the stages in order and pastes the result back on the canvas. Every piece of
maths lives in a stage or in :mod:`layerkit.ops`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from layerkit.config import PipelineSettings, build_stages, dump_config, load_config, parse_override
from layerkit.errors import PromptError
from layerkit.io.image import ImageLike, load_image
from layerkit.modules.base import Segmenter, Stage, Trimapper
from layerkit.ops.boxes import select_box
from layerkit.ops.compositing import solve_layers
from layerkit.ops.roi import crop, expand_box, paste, scale_to_side
from layerkit.registry import ROLES
from layerkit.types import DecompositionResult, Layer, LayerStack, Prompt, alpha_bbox

#: ``callback(stage, event, seconds)`` with event "start" or "end".
ProgressCallback = Callable[[str, str, float], None]


class Pipeline:
    """Decompose an image into a complete background and an RGBA object layer.

    Build it from a config (``Pipeline.from_config("classical")``) or from stage objects. Stages
    are plain attributes: ``pipe.matter = MyMatter()`` swaps one; ``pipe.components`` lists them.

    Args:
        segmenter: image + prompt → mask.
        trimapper: mask (+ image) → trimap.
        matter: image + trimap → alpha.
        decomposer: image + alpha → (F, B).
        refiner: optional (image, alpha, F, B) → (F, B).
        grounder: optional image + text → boxes; needed for text prompts.
        generator: optional text → image; needed by :meth:`generate`.
        multilayer: optional image → whole layer stack backend (Qwen-Image-Layered), used by
            :meth:`layers` in automatic mode.
        proposer: optional image → object prompts, for :meth:`layers` in automatic mode.
        orderer: optional object layers → front-to-back order, for :meth:`layers` with ``order="auto"``.
        effects: optional (image, α, F, B, prompt) → (α, F, B) on the canvas: the object's cast
            shadow / reflection moved into its layer (``classical+effects``).
        completion: optional stack → stack stage that completes each layer's hidden part, used
            by :meth:`layers` on the finished stack.
        settings: pipeline-wide :class:`~layerkit.config.PipelineSettings`.

    Example:
        >>> pipe = Pipeline.from_config("classical")
        >>> res = pipe("photo.jpg", Prompt(boxes=[[120, 40, 380, 500]]))
        >>> res.foreground.shape, res.background.shape   # (H, W, 4), (H, W, 3)
        >>> res.layers.save("out.psd")
    """

    def __init__(self, segmenter: Any, trimapper: Any, matter: Any, decomposer: Any, refiner: Any = None,
                 grounder: Any = None, generator: Any = None, multilayer: Any = None, proposer: Any = None,
                 orderer: Any = None, settings: PipelineSettings | None = None, effects: Any = None,
                 completion: Any = None) -> None:
        self.generator = generator
        self.grounder = grounder
        self.segmenter = segmenter
        self.trimapper = trimapper
        self.matter = matter
        self.decomposer = decomposer
        self.refiner = refiner
        self.multilayer = multilayer
        self.proposer = proposer
        self.orderer = orderer
        self.effects = effects
        self.completion = completion  # optional stack -> stack: hidden parts of lower layers completed
        self.settings = settings or PipelineSettings()
        self.progress: ProgressCallback | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, name_or_path: str | os.PathLike = "classical",
                    overrides: Mapping[str, Any] | Sequence[str] | None = None, *, check_weights: bool = True,
                    **kw_overrides: Any) -> Pipeline:
        """Build a pipeline from a shipped config name or a YAML path.

        Args:
            name_or_path: ``"classical"``, ``"layeringdiff"``… or a path to a YAML file,
                optionally followed by overlays: ``"classical+hfa"`` is ``classical`` with
                ``layerkit/configs/overlay/hfa.yaml`` on top (:func:`layerkit.config.compose`).
            overrides: dotted overrides, as a mapping or ``["key=value", ...]``.
            check_weights: check at once that every model the decomposition needs is on disk
                (the generator and multi-layer backend are checked by :meth:`generate` and
                :meth:`layers`); ``False`` defers all checks to the entry point.
            **kw_overrides: overrides as keywords, ``__`` standing for ``.``
                (``matter__backend="vitmatte"``).

        Raises:
            ConfigError: unknown config, section, key or backend (valid choices listed).
        """
        merged: dict[str, Any] = (dict(parse_override(o) for o in overrides) if isinstance(overrides, (list, tuple))
                                  else dict(overrides or {}))
        merged.update(kw_overrides)
        cfg = load_config(name_or_path, merged)
        stages = build_stages(cfg)
        settings = PipelineSettings(**cfg["pipeline"])
        pipe = cls(settings=settings, **stages)
        if check_weights:
            pipe.check_weights(pipe.eager_roles())
        pipe.to(settings.device)
        return pipe

    def eager_roles(self) -> tuple[str, ...]:
        """The roles whose weights :meth:`from_config` checks at once: every stage a decomposition
        runs whatever the prompt. The generator and the multi-layer backend are checked by
        :meth:`generate` / :meth:`layers`; the grounder when a text prompt (or a grounded
        proposer) needs it, unless the trimapper asks it for transparent material on every call
        — so ``from_config("lasagna").generate(mode="fg")`` needs no Grounding DINO."""
        always = isinstance(self.trimapper, Trimapper) and bool(self.trimapper.transparency_prompt)
        return tuple(r for r in ROLES if r not in ("generator", "multilayer") and (r != "grounder" or always))

    def check_weights(self, roles: Sequence[str] = ROLES) -> None:
        """Raise one error naming every learned stage (of ``roles``) whose weights cannot be found.

        A stage takes part by defining ``missing_weights() -> list[str]``: one line per missing
        model, naming the config key to set (e.g. ``"segmenter.checkpoint: sam_vit_h.pth not
        found; set it to a local file"``). Nothing is loaded here.

        Raises:
            MissingModelError: listing every missing model.
        """
        from layerkit.errors import MissingModelError

        missing: list[str] = []
        for role in dict.fromkeys(roles):  # each role once, in the order given
            stage = getattr(self, role)
            if isinstance(stage, Stage):
                missing += [f"{role}: {m}" for m in stage.missing_weights()]
        if missing:
            raise MissingModelError(f"{len(missing)} model(s) not available offline: " + "; ".join(missing))

    @property
    def components(self) -> dict[str, Any]:
        """The named stages, ``None`` for absent optional ones (``role → stage``)."""
        return {role: getattr(self, role) for role in ROLES}

    def config(self) -> dict[str, Any]:
        """The config that rebuilds this pipeline (reflects stages swapped by assignment)."""
        import dataclasses

        cfg: dict[str, Any] = {"pipeline": dataclasses.asdict(self.settings)}
        for role, stage in self.components.items():
            if stage is None:
                cfg[role] = {"backend": "none"}
            elif isinstance(stage, Stage):
                cfg[role] = stage.config()
            else:  # a plain callable: its class rebuilds it, its arguments are unknown
                cls = type(stage)
                cfg[role] = {"backend": f"{cls.__module__}:{cls.__qualname__}"}
        return cfg

    def save_config(self, path: str | os.PathLike) -> None:
        """Write :meth:`config` as YAML; ``Pipeline.from_config(path)`` rebuilds the pipeline."""
        dump_config(self.config(), path)

    def to(self, device: str) -> Pipeline:
        """Move every stage that has ``.to`` (learned stages) to ``device`` ("auto" picks CUDA if present)."""
        if device == "auto":
            import importlib.util

            device = "cpu"
            if importlib.util.find_spec("torch") is not None:
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
        self.settings.device = device
        for stage in self.components.values():
            if isinstance(stage, Stage):
                stage.to(device)
        return self

    def manual_seed(self, seed: int | None = None) -> None:
        """Give every stage the seed ``seed`` (default ``settings.seed``); called before each run,
        so the same seed gives the same output whatever ran before."""
        seed = self.settings.seed if seed is None else int(seed)
        for stage in self.components.values():
            if isinstance(stage, Stage):
                stage.manual_seed(seed)

    # ------------------------------------------------------------------ running
    @contextmanager
    def _stage(self, name: str, timings: dict[str, float]) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.progress:
            self.progress(name, "start", 0.0)
        yield
        dt = time.perf_counter() - t0
        timings[name] = timings.get(name, 0.0) + dt
        if self.progress:
            self.progress(name, "end", dt)

    def __call__(self, image: ImageLike, prompt: Prompt | None = None, *, name: str | None = None) -> DecompositionResult:
        """Decompose ``image`` into background + the object chosen by ``prompt``.

        Args:
            image: path, PIL image or ``H×W×3`` array (uint8 or float in ``[0, 1]``).
            prompt: points / boxes / mask / text, any mix.
            name: name of the object layer (default: the text prompt or "object").

        Returns:
            :class:`~layerkit.types.DecompositionResult` with ``foreground`` (``H×W×4`` straight
            RGBA), ``background`` (``H×W×3``), ``alpha``, ``layers`` and per-stage ``timings``.

        Raises:
            InputImageError: unreadable or out-of-range image.
            PromptError: prompt outside the image, empty, or text without a grounding stage.
        """
        if prompt is None:
            raise PromptError("no prompt: give a box, point(s), a mask or a text phrase (e.g. Prompt(boxes=[[x0, y0, x1, y1]]))")
        timings: dict[str, float] = {}
        s = self.settings
        with self._stage("load", timings):
            img = load_image(image, max_pixels=s.max_pixels)
        h, w = img.shape[:2]
        prompt.validate(h, w)
        if prompt.text is not None:
            prompt = self._ground(img, prompt, timings)

        self.manual_seed()
        embeds_whole = isinstance(self.segmenter, Segmenter) and not self.segmenter.crop_to_prompt
        only_points = prompt.points is not None and prompt.boxes is None and prompt.mask is None
        if embeds_whole or (s.point_whole and only_points):
            # a learned segmenter embeds the whole image once (reused by every object of a
            # multi-layer run) and is prompted in full-image pixels; with `point_whole` a click is
            # segmented once on the whole image (no coarse pass, no second pass on a crop); the
            # rest runs on the region
            with self._stage("segment", timings):
                if embeds_whole:
                    self.segmenter.set_image(img)  # type: ignore[union-attr]
                    full_mask = np.asarray(self.segmenter.predict(prompt)) > 0.5
                else:
                    full_mask = np.asarray(self.segmenter(img, prompt)) > 0.5
            with self._stage("locate", timings):
                roi = self._roi_of_mask(img, prompt, full_mask)
            mask = crop(full_mask, roi)
            x0, y0 = roi[:2]
            sub = crop(img, roi)
            sub_prompt = prompt.shifted(x0, y0, sub.shape[:2])
        else:
            with self._stage("locate", timings):
                roi = self._roi(img, prompt)
            x0, y0 = roi[:2]
            sub = crop(img, roi)
            sub_prompt = prompt.shifted(x0, y0, sub.shape[:2])
            with self._stage("segment", timings):
                mask = np.asarray(self.segmenter(sub, sub_prompt))
        if not (mask > 0.5).any():
            raise PromptError(f"the segmenter found no object for prompt {prompt.to_dict()}; try a tighter box or more points")
        with self._stage("trimap", timings):
            query = self.trimapper.transparency_prompt if isinstance(self.trimapper, Trimapper) else None
            if query and self.grounder is not None:  # MatteAnything: widen the band over transparent material
                trimap = self.trimapper(mask, sub, transparent_boxes=self.grounder(sub, query).boxes)
            else:
                trimap = self.trimapper(mask, sub)
        with self._stage("matte", timings):
            alpha = np.clip(self.matter(sub, trimap), 0.0, 1.0).astype(np.float32)
        with self._stage("decompose", timings):
            fg, bg = self.decomposer(sub, alpha, sub_prompt)
        if self.refiner is not None:
            with self._stage("refine", timings):
                fg, bg = self.refiner(sub, alpha, fg, bg)
        if s.consistent:
            fg, bg = solve_layers(sub, alpha, bg, fg, min_alpha=s.consistent_min_alpha)

        full_alpha = paste(np.zeros((h, w), np.float32), alpha, roi)
        full_fg = paste(np.zeros((h, w, 3), np.float32), fg, roi)
        full_bg = paste(img.copy(), bg, roi)
        out_roi = roi
        if self.effects is not None:  # on the canvas: a shadow or reflection leaves the prompt's box
            with self._stage("effects", timings):
                full_alpha, full_fg, full_bg = self.effects(img, full_alpha, full_fg, full_bg, prompt)
            eb = alpha_bbox(full_alpha)
            out_roi = roi if eb is None else (min(roi[0], eb[0]), min(roi[1], eb[1]), max(roi[2], eb[2]), max(roi[3], eb[3]))
        rgba = np.concatenate([full_fg, full_alpha[..., None]], axis=2)
        layer_name = name or prompt.text or "object"
        stack = LayerStack([Layer.from_rgb(full_bg, name="background"), Layer(rgba, name=layer_name, prompt=prompt)])
        return DecompositionResult(
            image=img, foreground=rgba, background=full_bg, alpha=full_alpha,
            mask=paste(np.zeros((h, w), bool), mask > 0.5, roi), trimap=paste(np.zeros((h, w), np.float32), trimap, roi),
            layers=stack, prompt=prompt, roi=out_roi, timings=timings)

    def _ground(self, img: np.ndarray, prompt: Prompt, timings: dict[str, float]) -> Prompt:
        if self.grounder is None:
            raise PromptError(f"text prompt {prompt.text!r} needs a grounding stage, and config {self.settings.name!r} has none; "
                              "use --config layeringdiff (Grounding DINO) or set grounder.backend=grounding_dino|owlv2, "
                              "or give a box/point instead")
        self.check_weights(("grounder",))  # before any work on the prompt (see eager_roles)
        with self._stage("ground", timings):
            det = self.grounder(img, prompt.text)
        i = select_box(det.boxes, det.scores, prompt.points, prompt.labels)
        if i is None:
            raise PromptError(f"the grounder found nothing matching {prompt.text!r}; rephrase it or give a box/point")
        h, w = img.shape[:2]
        b = np.clip(np.asarray(det.boxes[i], np.float64), 0, [w, h, w, h])
        boxes = b[None] if prompt.boxes is None else np.concatenate([prompt.boxes, b[None]])
        return Prompt(points=prompt.points, labels=prompt.labels, boxes=boxes, mask=prompt.mask, text=prompt.text)

    def _roi_of_mask(self, img: np.ndarray, prompt: Prompt, mask: np.ndarray) -> tuple[int, int, int, int]:
        """Region of a full-image mask (a learned segmenter's, or a click's with ``point_whole``):
        the prompt's box (or mask) plus the margin, as for :meth:`_roi`; with points only, the
        mask's box (with the points) plus the wider margin of the coarse pass."""
        s = self.settings
        h, w = img.shape[:2]
        if prompt.boxes is not None or prompt.mask is not None:
            return expand_box(prompt.bbox(), (h, w), s.roi_margin, s.roi_min_margin)  # type: ignore[arg-type]
        box = alpha_bbox(mask.astype(np.float32))
        pb = prompt.bbox()
        if box is None:
            return expand_box(pb, (h, w), max(s.roi_margin, 0.25), s.roi_min_margin)  # type: ignore[arg-type]
        if pb is not None:
            box = (min(box[0], pb[0]), min(box[1], pb[1]), max(box[2], pb[2]), max(box[3], pb[3]))
        return expand_box(box, (h, w), max(s.roi_margin, 0.25), s.roi_min_margin)

    def _roi(self, img: np.ndarray, prompt: Prompt) -> tuple[int, int, int, int]:
        """Region processed at full resolution: the prompt's box plus a margin.

        With points only, the object's extent is unknown: the segmenter runs once on a copy of
        the whole image downscaled to ``coarse_side`` and its mask's box (plus margin) is the
        region. (Passing that box on as a box prompt was measured worse: SAD 34 vs 13 on the
        dev set, because a leaking coarse mask then enlarges the object.)
        """
        s = self.settings
        h, w = img.shape[:2]
        if prompt.boxes is not None or prompt.mask is not None:
            return expand_box(prompt.bbox(), (h, w), s.roi_margin, s.roi_min_margin)  # type: ignore[arg-type]
        k = scale_to_side((h, w), s.coarse_side)
        small = _resize(img, k) if k < 1 else img
        sp = Prompt(points=np.minimum(prompt.points * k, [small.shape[1] - 1, small.shape[0] - 1]),  # type: ignore[operator]
                    labels=prompt.labels)
        coarse = np.asarray(self.segmenter(small, sp)) > 0.5
        box = alpha_bbox(coarse.astype(np.float32))
        pb = prompt.bbox()
        if box is None:
            return expand_box(pb, (h, w), max(s.roi_margin, 0.25), s.roi_min_margin)  # type: ignore[arg-type]
        box = (int(box[0] / k), int(box[1] / k), int(np.ceil(box[2] / k)), int(np.ceil(box[3] / k)))
        if pb is not None:
            box = (min(box[0], pb[0]), min(box[1], pb[1]), max(box[2], pb[2]), max(box[3], pb[3]))
        return expand_box(box, (h, w), max(s.roi_margin, 0.25), s.roi_min_margin)

    # ------------------------------------------------------------------ other entry points
    def generate(self, text: str, foreground: str | Sequence[int] | None = None, **kwargs: Any) -> LayerStack:
        """Text → composite (generator) → layers; see :func:`layerkit.pipelines.generate.generate_layers`."""
        from layerkit.pipelines.generate import generate_layers

        return generate_layers(self, text, foreground=foreground, **kwargs)

    def layers(self, image: ImageLike, prompts: Sequence[Prompt] | None = None, **kwargs: Any) -> LayerStack:
        """Multi-layer decomposition; see :func:`layerkit.pipelines.sequential.decompose_layers`."""
        from layerkit.pipelines.sequential import decompose_layers

        return decompose_layers(self, image, prompts, **kwargs)

    def __repr__(self) -> str:
        parts = ", ".join(f"{r}={type(s).__name__}" for r, s in self.components.items() if s is not None)
        return f"Pipeline({self.settings.name!r}: {parts})"


def _resize(img: np.ndarray, k: float) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
