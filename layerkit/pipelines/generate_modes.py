"""LASAGNA's conditional generation modes (wiring only): FG-gen and BG-gen.

* ``mode="fg"``: background image + region (box) + text → the generator repaints the region
  (a little enlarged, so the object's shadow fits), the pipeline's stages extract the new
  object from the repainted picture with the box as prompt, and the layer's alpha and colour
  are solved against the **known background**, which therefore stays pixel-exact; where the
  picture differs from the background beyond the object (the shadow the model painted), the
  smallest alpha that explains it joins the layer (:mod:`layerkit.modules.generator.layer_solve`).
* ``mode="bg"``: an RGBA foreground + text → the generator paints everything the foreground
  does not cover, then (a second pass) the part it hides, so the background is complete; the
  foreground layer is the given RGBA, pixel-exact.

``mode="all"`` (text → composite → layers) is :func:`layerkit.pipelines.generate.generate_result`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.errors import ConfigError, PromptError
from layerkit.io.image import ImageLike, load_image
from layerkit.modules.generator.layer_solve import crop_to, layer_over_known_background, pad_to_multiple
from layerkit.ops.roi import expand_box
from layerkit.types import DecompositionResult, Layer, LayerStack, Prompt

if TYPE_CHECKING:
    from layerkit.pipelines.decompose import Pipeline

MODES = ("all", "fg", "bg")


def _generator(pipe: Pipeline, mode: str) -> Any:
    gen = pipe.generator
    if gen is None:
        raise ConfigError(f"config {pipe.settings.name!r} has no generator; use --config lasagna or set "
                          "generator.backend=diffusers_layers generator.model=DIR")
    if not callable(getattr(gen, "inpaint", None)):
        raise ConfigError(f"--mode {mode} needs a generator that can inpaint; set generator.backend=diffusers_layers "
                          "(any diffusers text-to-image or inpainting checkpoint, generator.model=DIR)")
    return gen


def load_rgba(source: ImageLike | np.ndarray, max_pixels: int | None = None) -> np.ndarray:
    """An RGBA layer (file or ``H×W×4`` array, uint8 or float) as float32 straight RGBA.

    Raises:
        InputImageError: unreadable file; PromptError: no alpha channel or fully transparent.
    """
    if isinstance(source, np.ndarray):
        arr = source.astype(np.float32) / (255.0 if source.dtype == np.uint8 else 1.0)
    else:
        from layerkit.evaluation.composites import read_rgba
        from layerkit.io.image import load_image as _check

        _check(source, max_pixels=max_pixels)  # same checks (exists, readable, size) as any input image
        arr = read_rgba(source)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise PromptError(f"the foreground must be an RGBA image (H×W×4), got shape {arr.shape}; save it as a PNG with alpha")
    if not (arr[..., 3] > 0).any():
        raise PromptError("the foreground is fully transparent; give an RGBA image whose alpha marks the object")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def generate_mode(pipe: Pipeline, text: str, mode: str, *, seed: int | None = None,
                  background: ImageLike | None = None, box: Sequence[float] | None = None,
                  layer: ImageLike | np.ndarray | None = None, name: str | None = None,
                  grow: float = 0.15) -> DecompositionResult:
    """Run ``mode`` ``"fg"`` or ``"bg"`` (see the module docstring).

    Args:
        pipe: a pipeline whose generator can inpaint (``--config lasagna``).
        text: what to generate (the object for ``fg``, the scene for ``bg``).
        mode: ``"fg"`` or ``"bg"``.
        seed: sampling seed; None uses ``pipe.settings.seed``.
        background: ``fg``: the background image (path, PIL or array).
        box: ``fg``: ``(x0, y0, x1, y1)`` where the object goes.
        layer: ``bg``: the RGBA foreground (path or ``H×W×4`` array); its size is the canvas.
        name: the object layer's name (default: ``text``).
        grow: ``fg``: the repainted region is the box enlarged by this share of its size.

    Returns:
        A :class:`DecompositionResult` whose ``image`` is the new composite and ``layers`` the
        two-layer stack (background, object).

    Raises:
        ConfigError: unknown mode, no (inpainting) generator. PromptError: missing or bad inputs.
        MissingModelError: the generator's (or the extraction stages') weights are missing.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown generation mode {mode!r}; use one of {', '.join(MODES)}")
    if not str(text).strip():
        raise PromptError("the generation prompt is empty; describe what to generate")
    gen = _generator(pipe, mode)
    seed = pipe.settings.seed if seed is None else int(seed)
    t0 = time.perf_counter()
    if mode == "fg":
        if background is None or box is None:
            raise PromptError("--mode fg needs --background IMAGE and --box X0,Y0,X1,Y1 (where the new object goes)")
        bg = load_image(background, max_pixels=pipe.settings.max_pixels)
        h, w = bg.shape[:2]
        prompt = Prompt(boxes=[list(box)]).validate(h, w)
        pipe.check_weights(("generator", "segmenter", "trimapper", "matter", "decomposer", "refiner", "effects"))
        x0, y0, x1, y1 = expand_box(prompt.bbox(), (h, w), grow, 2)  # type: ignore[arg-type]
        region = np.zeros((h, w), bool)
        region[y0:y1, x0:x1] = True
        padded = pad_to_multiple(bg)
        mask = pad_to_multiple(region.astype(np.float32)) > 0.5
        picture = crop_to(gen.inpaint(text, padded, mask, seed=seed), (h, w))
        t_gen = time.perf_counter() - t0
        res = pipe(picture, prompt, name=name or text)
        alpha, fg, comp = layer_over_known_background(picture, bg, res.alpha * region, region)
        rgba = np.dstack([fg, alpha])
        stack = LayerStack([Layer.from_rgb(bg, name="background"), Layer(rgba, name=name or text, prompt=prompt)])
        return DecompositionResult(image=comp, foreground=rgba, background=bg, alpha=alpha, mask=res.mask, trimap=res.trimap,
                                   layers=stack, prompt=prompt, roi=(x0, y0, x1, y1),
                                   timings={"generate": t_gen, **res.timings})
    if layer is None:
        raise PromptError("--mode bg needs --foreground RGBA_IMAGE (the object the new background goes around)")
    pipe.check_weights(("generator",))
    rgba = load_rgba(layer, pipe.settings.max_pixels)
    h, w = rgba.shape[:2]
    a = rgba[..., 3]
    grey = np.full((h, w, 3), 0.5, np.float32)
    init = a[..., None] * rgba[..., :3] + (1.0 - a[..., None]) * grey
    around = pad_to_multiple((a < 0.99).astype(np.float32)) > 0.5
    first = gen.inpaint(text, pad_to_multiple(init), around, seed=seed)
    import cv2

    hidden = cv2.dilate((a > 0.01).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(np.float32)
    full = crop_to(gen.inpaint(text, first, pad_to_multiple(hidden) > 0.5, seed=seed + 1), (h, w))
    bg = full
    comp = (a[..., None] * rgba[..., :3] + (1.0 - a[..., None]) * bg).astype(np.float32)
    stack = LayerStack([Layer.from_rgb(bg, name="background"), Layer(rgba, name=name or "foreground")])
    return DecompositionResult(image=comp, foreground=rgba, background=bg, alpha=a, mask=a > 0.5,
                               trimap=np.where(a >= 1, 1.0, np.where(a <= 0, 0.0, 0.5)).astype(np.float32),
                               layers=stack, prompt=None, roi=(0, 0, w, h), timings={"generate": time.perf_counter() - t0})
