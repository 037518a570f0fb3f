"""Text → image and text + image + mask → image with one diffusers checkpoint (LASAGNA's modes).

Backend ``diffusers_layers`` of the ``generator`` role: the text-to-image call of
:class:`~layerkit.modules.generator.diffusers_t2i.DiffusersGenerator` plus :meth:`inpaint`,
which repaints a masked region from a prompt. Any checkpoint folder (or cached hub id) that
``AutoPipelineForText2Image`` loads works: its inpainting pipeline is built from the same
components with ``AutoPipelineForInpainting.from_pipe`` (no second copy of the weights). A
dedicated inpainting checkpoint (9-channel UNet, e.g.
``diffusers/stable-diffusion-xl-1.0-inpainting-0.1``) is loaded with
``AutoPipelineForInpainting`` directly, and its text-to-image call inpaints a blank canvas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.errors import ConfigError, LayerkitError
from layerkit.modules.generator.diffusers_t2i import DiffusersGenerator, cpu_generator

if TYPE_CHECKING:
    import torch


def _is_inpainting(source: str) -> bool:
    """True when the checkpoint's pipeline class is an inpainting pipeline (``model_index.json``)."""
    index = Path(source) / "model_index.json"
    if not index.is_file():
        return False
    try:
        return "Inpaint" in str(json.loads(index.read_text()).get("_class_name", ""))
    except (OSError, ValueError):
        return False


class DiffusersLayerGenerator(DiffusersGenerator):
    """Text → image and masked repainting with one diffusers checkpoint.

    Args:
        model: hub id or local folder of a diffusers pipeline (``model_index.json``).
        steps: denoising steps.
        guidance_scale: classifier-free guidance weight.
        negative_prompt: what the image should not show.
        variant: weight-file variant (``"fp16"``; empty: default).
        cpu_offload: on CUDA, ``enable_model_cpu_offload``.
        dtype: ``auto``, ``float32``, ``float16``, ``bfloat16``.
        strength: inpainting strength (1 = the masked region is generated from noise).

    Example:
        >>> gen = DiffusersLayerGenerator("/models/sdxl").to("cuda")
        >>> out = gen.inpaint("a red fox", street, box_mask, seed=0)   # H×W×3, street outside the mask
    """

    def __init__(self, model: str = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1", steps: int = 30,
                 guidance_scale: float = 5.0, negative_prompt: str = "", variant: str = "", cpu_offload: bool = False,
                 dtype: str = "auto", strength: float = 1.0) -> None:
        super().__init__(model, steps, guidance_scale, negative_prompt, variant, cpu_offload, dtype)
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"generator.strength must be in (0, 1], got {strength}")
        self.strength = float(strength)
        self._inpaint_pipe: Any = None

    def _load(self, source: str, kwargs: dict[str, Any], dtype: torch.dtype) -> Any:
        from diffusers import AutoPipelineForInpainting

        if not _is_inpainting(source):
            return super()._load(source, kwargs, dtype)
        if self.variant:
            kwargs = {**kwargs, "variant": self.variant}
        pipe = AutoPipelineForInpainting.from_pretrained(source, dtype=dtype, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @property
    def inpainting(self) -> Any:
        """The inpainting pipeline (shares the loaded checkpoint's components)."""
        if self._inpaint_pipe is None:
            from diffusers import AutoPipelineForInpainting

            base = self.loaded
            pipe = base if "Inpaint" in type(base).__name__ else AutoPipelineForInpainting.from_pipe(base)
            pipe.set_progress_bar_config(disable=True)
            self._inpaint_pipe = pipe
        return self._inpaint_pipe

    def __call__(self, text: str, *, height: int = 1024, width: int = 1024, seed: int | None = None) -> np.ndarray:
        """Text → ``height×width×3`` image (an inpainting checkpoint repaints a blank canvas)."""
        if "Inpaint" not in type(self.loaded).__name__:
            return super().__call__(text, height=height, width=width, seed=seed)
        blank = np.full((height, width, 3), 0.5, np.float32)
        return self.inpaint(text, blank, np.ones((height, width), bool), seed=seed)

    def inpaint(self, text: str, image: np.ndarray, mask: np.ndarray, *, seed: int | None = None) -> np.ndarray:
        """Repaint the ``mask`` region of ``image`` from ``text``; pixels outside it are returned exactly.

        Args:
            text: what the region should show.
            image: ``H×W×3`` float RGB in ``[0, 1]``; H and W multiples of 8.
            mask: ``H×W`` bool (or float ``>= 0.5``), True where the image is repainted.
            seed: sampling seed (None: a random one).

        Returns:
            ``H×W×3`` float32 in ``[0, 1]``: the generated pixels inside the mask, ``image`` outside.

        Raises:
            ConfigError: an empty prompt, an empty mask or a size that is not a multiple of 8.
            LayerkitError: non-finite pixels (half-precision overflow).
        """
        import torch
        from PIL import Image

        h, w = image.shape[:2]
        for name, v in (("height", h), ("width", w)):
            if v < 8 or v % 8:
                raise ConfigError(f"image {name} must be a positive multiple of 8 for generation, got {v}")
        if not str(text).strip():
            raise ConfigError("the generation prompt is empty; describe what to generate")
        m = np.asarray(mask) >= 0.5
        if not m.any():
            raise ConfigError("the region to generate is empty; give a box or mask inside the image")
        generator = cpu_generator(seed)
        kwargs: dict[str, Any] = {"negative_prompt": self.negative_prompt} if self.negative_prompt else {}
        pil = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
        pil_mask = Image.fromarray(m.astype(np.uint8) * 255, "L")
        with torch.inference_mode():
            out = self.inpainting(prompt=text, image=pil, mask_image=pil_mask, height=h, width=w,
                                  num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                                  strength=self.strength, generator=generator, output_type="np", **kwargs)
        gen = np.asarray(out.images[0], dtype=np.float32)
        if not np.isfinite(gen).all():
            raise LayerkitError(f"the generator ({self.model}) produced non-finite pixels, usually a half-precision "
                                "overflow; set generator.dtype=float32 or bfloat16")
        return np.where(m[..., None], np.clip(gen, 0.0, 1.0), image).astype(np.float32)
