"""Multi-layer decomposition by sequential peeling (up to :data:`MAX_LAYERS` layers).

The front-most object is decomposed first with the single-object pipeline (``pipe(image,
prompt)``: alpha ``α₁``, object colour ``F₁``, completed background ``B₁``); the next object is
decomposed from ``B₁``, and so on. The stack is ``[B_n, obj_n, …, obj_1]`` (bottom → top). Each
object's colour is re-solved against the image it was peeled from
(:func:`~layerkit.ops.compositing.solve_layers`: where ``F`` would leave ``[0, 1]`` the
background is moved toward the image instead), so every peel satisfies
``I_{k-1} = α_k·F_k + (1 − α_k)·B_k`` and the whole stack recomposes the input exactly, up to
the pixels where ``α`` is below 0.001. An object peeled from a completed background keeps the completed
(hidden) part that the background completion painted in.

Front-to-back order: given by the caller, or found by the pipeline's ``orderer`` stage on the
input image (default :class:`~layerkit.modules.orderer.cues.CueOrderer`). That first
pass is not wasted: a result whose region was not changed by an earlier peel is reused instead of
recomputed.

Without prompts the objects are found by the pipeline's ``proposer`` stage (weight-free saliency,
or generic phrases grounded when a grounder is configured), or a multi-layer backend
(Qwen-Image-Layered) decomposes the image in one call.

This module is wiring: the algorithms are stages (proposer, orderer, and the single-object
pipeline's) or :mod:`layerkit.ops` functions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from layerkit.errors import PromptError
from layerkit.io.image import ImageLike, load_image
from layerkit.modules.base import Stage
from layerkit.ops.boxes import Box, box_iou
from layerkit.ops.compositing import psnr
from layerkit.ops.masks import same_object
from layerkit.ops.prompts import prompts_equal
from layerkit.pipelines.peeler import MAX_LAYERS, LayersResult, ObjectReport, Peeler, ProgressFn, check_max_layers, merge_ranges
from layerkit.types import DecompositionResult, LayerStack, Prompt


def peel_layers(pipe: Any, image: ImageLike, prompts: Sequence[Prompt] | None = None, *,
                order: str | Sequence[int] = "auto", max_layers: int = MAX_LAYERS, names: Sequence[str] | None = None,
                merge: Sequence[tuple[int, int]] = (), min_area: float = 5e-4, dup_iou: float = 0.8,
                backend: Any = None, progress: ProgressFn | None = None) -> LayersResult:
    """Decompose an image into a background and one layer per object.

    Args:
        pipe: the single-object :class:`~layerkit.pipelines.decompose.Pipeline` (or any callable
            ``pipe(image, prompt, name=...) -> DecompositionResult``).
        image: path, PIL image or ``H×W×3`` array.
        prompts: one :class:`~layerkit.types.Prompt` per object. ``None`` or empty: automatic mode
            (a multi-layer ``backend`` when given or configured as ``pipe.multilayer``, else
            object candidates found without weights, or with the pipeline's grounder).
        order: ``"auto"`` (from mutual occlusion), ``"given"`` (the first prompt is in front), or
            prompt indices front-most first.
        max_layers: most layers, background included (``2 … 20``); in automatic mode a cap.
        names: layer names (default: the prompt's text or ``object_N``).
        merge: ``(first, last)`` stack-index ranges merged after decomposition.
        min_area: smaller alpha mass (fraction of the image) counts as "nothing found".
        dup_iou: alpha soft-IoU at which two prompts are the same object.
        backend: a multi-layer backend, ``backend(image, max_layers=...) -> LayerStack``.
        progress: ``progress(done, total, message)`` after each object.

    Returns:
        :class:`LayersResult`; objects that found nothing are reported ``"empty"`` and skipped,
        repeats ``"duplicate"``.

    Raises:
        PromptError: more prompts than ``max_layers - 1``, a prompt outside the image, text
            without a grounding stage, a bad ``order``.
    """
    t0 = time.perf_counter()
    max_layers = check_max_layers(max_layers)
    img = load_image(image, max_pixels=None if pipe is None else pipe.settings.max_pixels)
    h, w = img.shape[:2]
    prompts = list(prompts or [])
    if not prompts:
        backend = backend if backend is not None else pipe.multilayer
        if backend is not None:
            return backend_layers(backend, img, max_layers=max_layers, merge=merge)
        return auto_layers(pipe, img, max_layers=max_layers, merge=merge, min_area=min_area, progress=progress)
    for p in prompts:
        p.validate(h, w)
    if any(p.text for p in prompts) and pipe.grounder is None:
        texts = [p.text for p in prompts if p.text]
        raise PromptError(f"text prompt(s) {texts} need a grounding stage and this pipeline has none; set "
                          "grounder.backend=grounding_dino|owlv2 or give boxes/points instead")
    names = list(names or [])
    if names and len(names) != len(prompts):
        raise PromptError(f"got {len(names)} names for {len(prompts)} prompts; give one name per prompt")
    names = names or [p.text or f"object_{i + 1}" for i, p in enumerate(prompts)]
    peeler = Peeler(pipe, img, min_area=min_area, dup_iou=min(dup_iou, 0.6), progress=progress)
    keep: list[int] = []
    for i, p in enumerate(prompts):
        j = next((k for k in keep if prompts_equal(p, prompts[k])), None)
        if j is None:
            keep.append(i)
        else:
            peeler._report(ObjectReport(i, names[i], "duplicate", detail=f"same prompt as object {j} ({names[j]!r})"))
    if len(keep) > max_layers - 1:
        raise PromptError(f"{len(keep)} objects were asked for but max_layers={max_layers} allows {max_layers - 1} "
                          f"plus the background; raise max_layers (at most {MAX_LAYERS}) or give fewer prompts")
    first: dict[int, tuple[DecompositionResult, float]] = {}
    if isinstance(order, str) and order == "auto":
        seq = _auto_order(peeler, prompts, names, keep, first, dup_iou)
    elif isinstance(order, str) and order == "given":
        seq = keep
    elif isinstance(order, str):
        raise PromptError(f"order must be 'auto', 'given' or a list of prompt indices, got {order!r}")
    else:
        seq = [int(i) for i in order]
        if sorted(seq) != list(range(len(prompts))):
            raise PromptError(f"order {list(order)} must list every prompt index 0..{len(prompts) - 1} once (front-most first)")
        seq = [i for i in seq if i in keep]
    for i in seq:
        res, dt = first.get(i, (None, 0.0))
        peeler.peel(i, prompts[i], names[i], first=res, seconds=dt)
    return peeler.result("prompted", t0, merge)


def _auto_order(peeler: Peeler, prompts: Sequence[Prompt], names: Sequence[str], keep: list[int],
                first: dict[int, tuple[DecompositionResult, float]], dup_iou: float) -> list[int]:
    """First pass on the input: drop repeats of one object, order the rest by occlusion.

    An object not found on the input is tried again last, on the final completed background
    (the objects in front of it may have hidden it from the segmenter).
    """
    found: list[int] = []
    retry: list[int] = []
    for i in keep:
        res, reason, dt = peeler.run(prompts[i], names[i], image=peeler.image)
        if res is None or float(res.alpha.sum()) / peeler.pixels < peeler.min_area:
            retry.append(i)
            continue
        dup = None
        for k in found:
            iou = same_object(res.alpha, first[k][0].alpha, dup_iou)
            pk, pi = prompts[k].bbox() if prompts[k].boxes is not None else None, prompts[i].bbox() if prompts[i].boxes is not None else None
            if iou is not None and (pk is None or pi is None or box_iou(pk, pi) >= 0.3):
                dup = (k, iou)
                break
        if dup is not None:
            peeler._report(ObjectReport(i, names[i], "duplicate", seconds=dt,
                                        detail=f"same object as object {dup[0]} ({names[dup[0]]!r}, alpha IoU {dup[1]:.2f})"))
            continue
        first[i] = (res, dt)
        found.append(i)
    if peeler.pipe.orderer is None:
        raise PromptError("order='auto' needs an orderer stage and this pipeline has none; set orderer.backend=cues "
                          "or give the order (order='given' or a list of prompt indices)")
    alphas = [first[i][0].alpha for i in found]
    order = peeler.pipe.orderer(peeler.image, alphas, [first[i][0].prompt for i in found])
    return [found[k] for k in order] + retry


def backend_layers(backend: Any, image: np.ndarray, max_layers: int = MAX_LAYERS,
                   merge: Sequence[tuple[int, int]] = ()) -> LayersResult:
    """Decompose with a one-call multi-layer backend (e.g. Qwen-Image-Layered).

    Args:
        backend: ``backend(image, max_layers=N) -> LayerStack`` (bottom → top, opaque bottom).
        image: ``H×W×3`` float32.
        max_layers: cap on the layer count, background included.
        merge: stack-index ranges merged afterwards.
    """
    t0 = time.perf_counter()
    stack = backend(image, max_layers=max_layers)
    reports = [ObjectReport(i - 1, layer.name, "layer", layer=i, area=float(layer.alpha.sum()) / (image.shape[0] * image.shape[1]))
               for i, layer in enumerate(stack) if i > 0]
    stack = merge_ranges(stack, merge, reports)
    comp = stack.composite()
    name = backend.config()["backend"] if isinstance(backend, Stage) else type(backend).__name__
    if ":" in name:  # not a registered backend: its class name
        name = type(backend).__name__
    return LayersResult(stack, reports, list(range(len(reports)))[::-1], psnr(comp[..., :3], image),
                        time.perf_counter() - t0, str(name), image)


def decompose_layers(pipe: Any, image: ImageLike, prompts: Sequence[Prompt] | None = None, **kwargs: Any) -> LayerStack:
    """Like :func:`peel_layers` but returns only the :class:`~layerkit.types.LayerStack`.

    Example:
        >>> stack = Pipeline.from_config("classical").layers("photo.jpg", [Prompt(boxes=[[10, 20, 200, 300]]),
        ...                                                                Prompt(points=[[300, 200]])])
        >>> stack.save("stack.psd")
    """
    return peel_layers(pipe, image, prompts, **kwargs).stack


def auto_layers(pipe: Any, image: np.ndarray, *, max_layers: int = 20, merge: Sequence[tuple[int, int]] = (),
                min_area: float = 5e-4, progress: ProgressFn | None = None) -> LayersResult:
    """Decompose ``image`` with no prompt; the method decides the number of layers (at most ``max_layers``).

    The pipeline's ``proposer`` finds the objects. An iterative one (weight-free saliency) is asked
    again on the completed background after each peel, until it finds nothing; the candidates
    of another (generic phrases grounded) are peeled in occlusion order.

    Args:
        pipe: the single-object pipeline.
        image: ``H×W×3`` float32.
        max_layers: cap, background included.
        merge: stack-index ranges merged afterwards.
        min_area: a peel with less alpha mass (fraction of the image) is empty.
        progress: ``progress(done, total, message)``.

    A candidate lying mostly within 2 % of the image side of an already peeled object is taken
    for a leftover of it and skipped.

    Raises:
        PromptError: the pipeline has no proposer stage.
    """
    import cv2

    limit = max_layers - 1
    proposer = pipe.proposer
    if proposer is None:
        raise PromptError("automatic mode needs a proposer stage and this pipeline has none; set proposer.backend=saliency "
                          "(weight-free) or grounded, or give one prompt per object")
    if proposer.needs_grounder:
        pipe.check_weights(("grounder",))
    if not proposer.iterative:
        prompts = [c.prompt() for c in proposer(image, grounder=pipe.grounder)][:limit]
        return _prompted(pipe, image, prompts, max_layers, merge, min_area, progress, f"auto-{proposer.config()['backend']}")
    t0 = time.perf_counter()
    peeler = Peeler(pipe, image, min_area=min_area, progress=progress)
    footprint = np.zeros(image.shape[:2], bool)
    near = np.ones((3, 3), np.uint8)
    grow = max(1, round(0.02 * max(image.shape[:2])))  # leftovers at a peeled object's rim are not new objects
    tried: list[Box] = []
    index = 0
    while len(peeler.layers) < limit and index < 2 * limit + 2:
        cands = [c for c in proposer(peeler.current, grounder=pipe.grounder)
                 if (c.mask is None or (c.mask & footprint).sum() < 0.5 * c.mask.sum())
                 and all(box_iou(c.box, t) < 0.9 for t in tried)]
        if not cands:
            break
        c = cands[0]
        tried.append(c.box)
        rep = peeler.peel(index, c.prompt(), f"object_{index + 1}")
        if rep.status == "layer":
            footprint |= cv2.dilate((peeler.alphas[-1] > 0.5).astype(np.uint8), near, iterations=grow).astype(bool)
        index += 1
    return peeler.result("auto", t0, merge)


def _prompted(pipe: Any, image: np.ndarray, prompts: list[Prompt], max_layers: int, merge: Sequence[tuple[int, int]],
              min_area: float, progress: ProgressFn | None, mode: str) -> LayersResult:
    if not prompts:
        t0 = time.perf_counter()
        peeler = Peeler(pipe, image, min_area=min_area, progress=progress)
        res = peeler.result(mode, t0, merge)
        res.objects = [ObjectReport(0, "object_1", "empty", detail="no object found")]
        return res
    res = peel_layers(pipe, image, prompts, order="auto", max_layers=max_layers, merge=merge, min_area=min_area,
                      progress=progress)
    res.mode = mode
    return res
