"""Text → layers (LayeringDiff): generate a composite, find the foreground phrase, decompose.

Wiring only, in the paper's order (§3.1–3.3):

1. **initial image generation** — the pipeline's ``generator`` turns the prompt ``T`` into a
   composite ``C_i`` (SDXL in the paper);
2. **foreground determination** — the foreground phrase ``T_F`` (a string, or the word indices
   ``I_F`` into ``T``) is grounded in ``C_i`` by the ``grounder``; the box goes through the
   ``segmenter``, ``trimapper`` (with the transparency pass when configured) and ``matter``;
3. **layering** — the ``decomposer`` and ``refiner`` split ``C_i`` into ``F`` and ``B``.

Steps 2–3 are exactly :class:`~layerkit.pipelines.decompose.Pipeline` called with
``Prompt(text=T_F)``; with an ``effects`` stage (``--config lasagna``) the object's shadow or
reflection lands in its layer. That is LASAGNA's **text-to-all** mode (``mode="all"``); the
other two modes are in :mod:`layerkit.pipelines.generate_modes`: ``mode="fg"`` (a new object in
a known background) and ``mode="bg"`` (a new background around a known RGBA object).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from layerkit.errors import ConfigError
from layerkit.modules.grounder.phrases import foreground_phrase
from layerkit.types import DecompositionResult, LayerStack, Prompt

if TYPE_CHECKING:
    from layerkit.pipelines.decompose import Pipeline


def generate_layers(pipe: Pipeline, text: str, foreground: str | Sequence[int] | None = None, seed: int | None = None,
                    height: int = 1024, width: int = 1024, mode: str = "all", **kw: Any) -> LayerStack:
    """Generate an image from ``text`` and split it into background + foreground layers.

    Args:
        pipe: a pipeline with a ``generator`` and a ``grounder`` (e.g. ``--config layeringdiff``).
        text: the prompt ``T`` ("A bird flying at sunset over the mountains").
        foreground: the foreground phrase ``T_F`` ("A bird flying"), its word indices ``I_F`` into
            ``text`` (``[0, 1, 2]``), or None for the words before the first preposition
            (see :func:`~layerkit.modules.grounder.phrases.default_foreground`).
        seed: sampling seed; None uses ``pipe.settings.seed``.
        height: image height in pixels (a multiple of 8).
        width: image width in pixels (a multiple of 8).
        mode: ``"all"`` (text → composite → layers), ``"fg"`` (needs ``background=`` and
            ``box=``) or ``"bg"`` (needs ``layer=``, an RGBA image); see
            :func:`layerkit.pipelines.generate_modes.generate_mode`.
        **kw: passed to the pipeline call (``name=`` for the object layer's name), or the mode's
            inputs.

    Returns:
        A :class:`LayerStack` of two ``height×width`` layers: the complete background (index 0)
        and the foreground object (straight RGBA), named after ``T_F`` unless ``name`` is given.

    Raises:
        ConfigError: the pipeline has no generator.
        PromptError: a bad foreground phrase or indices, no grounding stage, or nothing found.
        MissingModelError: a stage's weights are missing.

    Example:
        >>> pipe = Pipeline.from_config("layeringdiff")
        >>> stack = generate_layers(pipe, "A bird flying at sunset over the mountains", "A bird flying")
        >>> stack.save("bird.psd")
    """
    return generate_result(pipe, text, foreground, seed=seed, height=height, width=width, mode=mode, **kw).layers


def generate_result(pipe: Pipeline, text: str, foreground: str | Sequence[int] | None = None, seed: int | None = None,
                    height: int = 1024, width: int = 1024, mode: str = "all", **kw: Any) -> DecompositionResult:
    """Like :func:`generate_layers` but returns the whole :class:`~layerkit.types.DecompositionResult`.

    Its ``image`` is the generated composite ``C_i``, ``alpha``/``mask``/``trimap`` the
    foreground determination, ``prompt.boxes`` the grounded box, and ``timings`` includes
    ``"generate"``.
    """
    if mode != "all":
        from layerkit.pipelines.generate_modes import generate_mode

        return generate_mode(pipe, text, mode, seed=seed, **kw)
    if pipe.generator is None:
        raise ConfigError(f"config {pipe.settings.name!r} has no generator; use --config layeringdiff or set "
                          "generator.backend=diffusers (and generator.model to a local folder or cached hub id)")
    pipe.check_weights()  # every model of the text → layers run, named in one message
    phrase = foreground_phrase(text, foreground)
    seed = pipe.settings.seed if seed is None else int(seed)
    if pipe.progress:
        pipe.progress("generate", "start", 0.0)
    t0 = time.perf_counter()
    image = pipe.generator(text, height=height, width=width, seed=seed)
    seconds = time.perf_counter() - t0
    if pipe.progress:
        pipe.progress("generate", "end", seconds)
    kw.setdefault("name", phrase)
    result = pipe(image, Prompt(text=phrase), **kw)
    result.timings = {"generate": seconds, **result.timings}
    return result
