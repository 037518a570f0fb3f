"""Text → image with any diffusers text-to-image pipeline (LayeringDiff's initial composite).

The model is anything ``AutoPipelineForText2Image`` can load: Stable Diffusion XL (the paper's
choice, ``stabilityai/stable-diffusion-xl-base-1.0``), SD 1.5/2.x, PixArt, Flux… given as a hub
id found in the local Hugging Face cache or as a local folder written by ``save_pretrained``
(it holds ``model_index.json``). Sampling is seeded with a CPU ``torch.Generator``, so a seed
gives the same latents on every device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.errors import ConfigError, LayerkitError
from layerkit.modules.base import Generator
from layerkit.modules.hub import PretrainedStage
from layerkit.progress import diffusers_bar_config

if TYPE_CHECKING:
    import torch



def cpu_generator(seed: int | None) -> torch.Generator:
    """The CPU ``torch.Generator`` sampling is seeded with (``None``: a fresh random seed), so a
    seed gives the same picture on any device."""
    import torch

    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator

class DiffusersGenerator(PretrainedStage, Generator):
    """Prompt → ``H×W×3`` image with a diffusers text-to-image pipeline.

    Args:
        model: hub id or local folder of a diffusers pipeline (``model_index.json``).
        steps: denoising steps.
        guidance_scale: classifier-free guidance weight (``<= 1`` disables guidance).
        negative_prompt: what the image should not show (empty: none).
        variant: weight-file variant to load (``"fp16"`` for ``*.fp16.safetensors``; empty: default).
        cpu_offload: on CUDA, keep sub-models on the CPU and move each to the GPU only while it
            runs (``enable_model_cpu_offload``; needs ``accelerate``); ignored on the CPU.
        dtype: ``auto`` (bf16/fp16 on CUDA, fp32 on CPU), ``float32``, ``float16``, ``bfloat16``.

    Example:
        >>> gen = DiffusersGenerator().to("cuda")
        >>> img = gen("A bird flying at sunset over the mountains", height=1024, width=1024, seed=0)
        >>> img.shape, img.dtype                    # (1024, 1024, 3) float32 in [0, 1]
    """

    key = "generator.model"
    marker = "model_index.json"

    def __init__(self, model: str = "stabilityai/stable-diffusion-xl-base-1.0", steps: int = 30,
                 guidance_scale: float = 5.0, negative_prompt: str = "", variant: str = "",
                 cpu_offload: bool = False, dtype: str = "auto") -> None:
        super().__init__(model, dtype)
        if steps < 1:
            raise ValueError(f"generator.steps must be >= 1, got {steps}")
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.variant = variant
        self.cpu_offload = cpu_offload

    def _load(self, source: str, kwargs: dict[str, Any], dtype: torch.dtype) -> Any:
        from diffusers import AutoPipelineForText2Image

        if self.variant:
            kwargs = {**kwargs, "variant": self.variant}
        pipe = AutoPipelineForText2Image.from_pretrained(source, dtype=dtype, **kwargs)
        pipe.set_progress_bar_config(**diffusers_bar_config())  # diffusers' own step bar, off with --quiet
        return pipe

    def _place(self, obj: Any, dtype: torch.dtype) -> None:
        if self.cpu_offload and self.device.startswith("cuda"):
            obj.enable_model_cpu_offload(device=self.device)
        elif obj.dtype != dtype:
            obj.to(device=self.device, dtype=dtype)
        else:
            obj.to(self.device)

    def __call__(self, text: str, *, height: int = 1024, width: int = 1024, seed: int | None = None) -> np.ndarray:
        """Generate one image.

        Args:
            text: the prompt ``T``.
            height: output height in pixels, a multiple of 8.
            width: output width in pixels, a multiple of 8.
            seed: sampling seed (None: a random one).

        Returns:
            ``height×width×3`` float32 RGB in ``[0, 1]``.

        Raises:
            ConfigError: a size that is not a positive multiple of 8.
            LayerkitError: the pipeline produced non-finite pixels (half-precision overflow).
        """
        import torch

        for name, v in (("height", height), ("width", width)):
            if v < 8 or v % 8:
                raise ConfigError(f"{name} must be a positive multiple of 8, got {v}")
        if not str(text).strip():
            raise ConfigError("the generation prompt is empty; describe the picture to generate")
        pipe = self.loaded
        generator = cpu_generator(seed)
        kwargs: dict[str, Any] = {"negative_prompt": self.negative_prompt} if self.negative_prompt else {}
        with torch.inference_mode():
            out = pipe(prompt=text, height=height, width=width, num_inference_steps=self.steps,
                       guidance_scale=self.guidance_scale, generator=generator, output_type="np", **kwargs)
        image = np.asarray(out.images[0], dtype=np.float32)
        if not np.isfinite(image).all():
            raise LayerkitError(f"the generator ({self.model}) produced non-finite pixels, usually a half-precision "
                                "overflow; set generator.dtype=float32 or bfloat16")
        return np.ascontiguousarray(np.clip(image, 0.0, 1.0))
