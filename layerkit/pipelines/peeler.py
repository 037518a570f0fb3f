"""The peeling state of a multi-layer run: one object at a time off an image, front-most first,
and the report of what became of each object (:class:`Peeler`, :class:`ObjectReport`,
:class:`LayersResult`). :mod:`layerkit.pipelines.sequential` wires it to prompts, orders and proposals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from layerkit.errors import PromptError
from layerkit.ops.boxes import Box, box_intersection
from layerkit.ops.compositing import psnr, solve_layers
from layerkit.ops.masks import same_object
from layerkit.types import DecompositionResult, Layer, LayerStack, Prompt, alpha_bbox

#: Most layers (background included) a decomposition may have.
MAX_LAYERS = 20
#: ``progress(done, total, message)``
ProgressFn = Callable[[int, int, str], None]


@dataclass
class ObjectReport:
    """What became of one requested (or automatically found) object.

    Attributes:
        index: the prompt's (or candidate's) index, 0-based, in the order given.
        name: layer name.
        status: ``"layer"`` (it is a layer), ``"empty"`` (nothing found), ``"duplicate"`` (the
            same object as another prompt).
        layer: its index in the final stack (bottom → top) when ``status == "layer"``.
        detail: why it is empty or a duplicate.
        area: alpha mass as a fraction of the image.
        seconds: time spent on it.
        reused: its first-pass result was reused (its region was untouched by earlier peels).
    """

    index: int
    name: str
    status: str
    layer: int | None = None
    detail: str = ""
    area: float = 0.0
    seconds: float = 0.0
    reused: bool = False


@dataclass
class LayersResult:
    """A multi-layer decomposition and its report.

    Attributes:
        stack: the layers, bottom → top; index 0 is the opaque completed background.
        objects: one :class:`ObjectReport` per prompt / candidate.
        order: front-to-back indices of the objects that became layers.
        psnr: PSNR (dB) of ``stack.composite()`` against the input.
        seconds: wall time.
        mode: ``"prompted"``, ``"auto"`` or the multi-layer backend's name.
        image: the ``H×W×3`` input.
    """

    stack: LayerStack
    objects: list[ObjectReport]
    order: list[int]
    psnr: float
    seconds: float
    mode: str
    image: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0, 3), np.float32))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly report (no pixel data)."""
        return {"mode": self.mode, "layers": self.stack.names, "order_front_to_back": self.order,
                "recompose_psnr_db": round(self.psnr, 2) if np.isfinite(self.psnr) else None,
                "seconds": round(self.seconds, 3), "objects": [asdict(o) for o in self.objects]}


def check_max_layers(max_layers: int) -> int:
    """Validate a layer cap (background included); returns it.

    Raises:
        PromptError: outside ``2 … MAX_LAYERS``.
    """
    if not isinstance(max_layers, (int, np.integer)) or not 2 <= int(max_layers) <= MAX_LAYERS:
        raise PromptError(f"max_layers must be an integer in 2..{MAX_LAYERS} (background included), got {max_layers!r}")
    return int(max_layers)


class Peeler:
    """Peels objects off an image one at a time, front-most first.

    Args:
        pipe: single-object pipeline, ``pipe(image, prompt, name=...) -> DecompositionResult``.
        image: ``H×W×3`` float32 input in ``[0, 1]``.
        min_area: an alpha mass below this fraction of the image counts as "nothing found".
        dup_iou: soft IoU with an already peeled object above which a peel is that object again.
        progress: optional ``progress(done, total, message)``.
        completion: optional ``stack -> stack`` stage run on the finished stack (role
            ``completion``: each layer's hidden part completed); default ``pipe.completion``.
    """

    def __init__(self, pipe: Any, image: np.ndarray, min_area: float = 5e-4, dup_iou: float = 0.6,
                 progress: ProgressFn | None = None, completion: Any = None) -> None:
        self.pipe = pipe
        settings = pipe.settings
        self.consistent, self.consistent_min_alpha = settings.consistent, settings.consistent_min_alpha
        self.completion = completion if completion is not None else getattr(pipe, "completion", None)
        self.image = image
        self.current = image.copy()
        self.min_area = min_area
        self.dup_iou = dup_iou
        self.progress = progress
        self.layers: list[Layer] = []          # front → back
        self.alphas: list[np.ndarray] = []     # alphas of self.layers
        self.order: list[int] = []             # object index of each layer, front → back
        self.changed: list[Box] = []           # boxes of the pixels rewritten by peels so far
        self.reports: list[ObjectReport] = []

    @property
    def pixels(self) -> int:
        return int(self.image.shape[0] * self.image.shape[1])

    def run(self, prompt: Prompt, name: str, image: np.ndarray | None = None) -> tuple[DecompositionResult | None, str, float]:
        """One pipeline call on ``image`` (default: the current residual image).

        Returns:
            ``(result or None, reason when None, seconds)``; a :class:`PromptError` raised by the
            pipeline (nothing found) gives ``None``.
        """
        t0 = time.perf_counter()
        try:
            res = self.pipe(self.current if image is None else image, prompt, name=name)
        except PromptError as e:
            return None, str(e), time.perf_counter() - t0
        return res, "", time.perf_counter() - t0

    def reusable(self, res: DecompositionResult) -> bool:
        """A first-pass result still holds when no earlier peel changed its region and its region
        depends on the prompt alone (boxes or mask, no text to re-ground)."""
        p = res.prompt
        if res.roi is None or p is None or p.text is not None or (p.boxes is None and p.mask is None):
            return False
        return all(box_intersection(res.roi, c) is None for c in self.changed)

    def peel(self, index: int, prompt: Prompt, name: str, first: DecompositionResult | None = None,
             seconds: float = 0.0) -> ObjectReport:
        """Peel one object off the current image (reusing ``first`` when still valid)."""
        reused = first is not None and self.reusable(first)
        if reused:
            res, reason, dt = first, "", 0.0
        else:
            res, reason, dt = self.run(prompt, name)
        dt += seconds
        if res is None:
            return self._report(ObjectReport(index, name, "empty", detail=reason, seconds=dt))
        return self.accept(index, name, res, dt, reused)

    def accept(self, index: int, name: str, res: DecompositionResult, seconds: float = 0.0,
               reused: bool = False) -> ObjectReport:
        """Turn a pipeline result on the current image into a layer and move on to its background."""
        alpha = np.clip(res.alpha, 0.0, 1.0).astype(np.float32)
        area = float(alpha.sum()) / self.pixels
        if area < self.min_area:
            return self._report(ObjectReport(index, name, "empty", detail=f"alpha covers {area:.2%} of the image",
                                             area=area, seconds=seconds))
        for k, prev in enumerate(self.alphas):
            iou = same_object(alpha, prev, self.dup_iou)
            if iou is not None:
                return self._report(ObjectReport(index, name, "duplicate", area=area, seconds=seconds,
                                                 detail=f"same object as {self.layers[k].name!r} (alpha IoU {iou:.2f})"))
        fg, bg = res.foreground[..., :3], res.background
        if reused:  # the result was computed on an earlier image: only its region is valid
            x0, y0, x1, y1 = res.roi  # type: ignore[misc]
            bg = self.current.copy()
            bg[y0:y1, x0:x1] = res.background[y0:y1, x0:x1]
            if self.consistent:  # F and B were solved against the input, which may differ from the current image
                fg, bg = solve_layers(self.current, alpha, bg, fg, min_alpha=self.consistent_min_alpha)
        rgba = np.concatenate([fg * (alpha[..., None] > 0), alpha[..., None]], axis=2)
        self.layers.append(Layer(rgba, name=name, prompt=res.prompt))
        self.alphas.append(alpha)
        self.order.append(index)
        bg = np.ascontiguousarray(bg, dtype=np.float32)
        changed = alpha_bbox(np.any(bg != self.current, axis=2).astype(np.float32), 0.5)  # exactly what this peel rewrote
        if changed is not None:
            self.changed.append(changed)
        self.current = bg
        return self._report(ObjectReport(index, name, "layer", area=area, seconds=seconds, reused=reused))

    def _report(self, rep: ObjectReport) -> ObjectReport:
        self.reports.append(rep)
        if self.progress:
            self.progress(len(self.reports), -1, f"{rep.name}: {rep.status}" + (f" ({rep.detail})" if rep.detail else ""))
        return rep

    def result(self, mode: str, t0: float, merge: Sequence[tuple[int, int]] = ()) -> LayersResult:
        """The stack ``[background, back-most object, …, front-most object]`` and the report."""
        layers = [Layer.from_rgb(self.current, name="background"), *reversed(self.layers)]
        stack = LayerStack(layers)
        if self.completion is not None:
            stack = self.completion(stack)
        n = len(self.layers)
        for rep in self.reports:
            if rep.status == "layer":
                rep.layer = n - self.order.index(rep.index)
        stack = merge_ranges(stack, merge, self.reports)
        comp = stack.composite()
        score = psnr(comp[..., :3], self.image) if comp.shape[2] >= 3 else float("nan")
        reports = sorted(self.reports, key=lambda r: r.index)
        return LayersResult(stack, reports, list(self.order), score, time.perf_counter() - t0, mode, self.image)


def merge_ranges(stack: LayerStack, ranges: Sequence[tuple[int, int]], reports: Sequence[ObjectReport] = ()) -> LayerStack:
    """Merge adjacent stack layers ``first … last`` (inclusive, bottom → top indices) for each range.

    Ranges refer to the stack before any merge and must not overlap; ``reports`` get their
    ``layer`` index updated.

    Raises:
        PromptError: a range outside the stack, reversed, or overlapping another.
    """
    from layerkit.editing import merge

    rs = sorted((int(a), int(b)) for a, b in ranges)
    n = len(stack)
    for k, (a, b) in enumerate(rs):
        if not 0 <= a < b < n:
            raise PromptError(f"merge range {a}-{b} is not valid for {n} layers; use FIRST-LAST with 0 <= FIRST < LAST <= {n - 1}")
        if k and a <= rs[k - 1][1]:
            raise PromptError(f"merge ranges {rs[k - 1][0]}-{rs[k - 1][1]} and {a}-{b} overlap; give disjoint ranges")
    for a, b in reversed(rs):
        stack = merge(stack, a, b)
        for rep in reports:
            if rep.layer is not None and rep.layer > a:
                rep.layer = a if rep.layer <= b else rep.layer - (b - a)
    return stack
