"""RefLayer decomposer (Referring Layer Decomposition): image + prompt → one complete RGBA layer.

The prompt's points, boxes and mask are drawn onto one colour canvas
(:func:`~layerkit.modules.decomposer.reflayer_nets.draw_canvas`), the image and the canvas
are encoded by the frozen VAE, the text by the text encoder, and a layer latent is integrated
from noise with ``FlowMatchEulerDiscreteScheduler`` (Euler steps of the flow ``v = ε − x₀``);
the VAE decoder gives its RGB, the alpha decoder its alpha (:mod:`reflayer_nets`).

As a pipeline ``decomposer`` (``(image, alpha, prompt) → (F, B)``) it returns the complete
layer's colour as ``F``; ``B`` is the image with the model's layer region filled by the
classical inpainting, and the pipeline's layer solve keeps the pair recomposing the input.
:meth:`RefLayerDecomposer.layer` gives the model's own RGBA layer (its alpha included).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerkit.modules.base import Decomposer
from layerkit.modules.hub import PretrainedStage
from layerkit.types import Prompt


class RefLayerDecomposer(PretrainedStage, Decomposer):
    """The RefLayer model as a ``decomposer`` stage.

    Args:
        model: RefLayer model folder (``RUN/export/reflayer`` from ``layerkit train reflayer``) or
            hub id with that layout.
        steps: Euler flow-matching steps.
        resolution: long side (pixels) the model runs at; outputs are resized back. 0 = the input
            size (rounded up to the model's size multiple).
        shift: the scheduler's timestep shift (SD3 uses 3.0 at 1024²; 1.0 = uniform).
        inpaint_method: how ``B`` is filled under the layer (see :mod:`~layerkit.ops.inpainting`).
        dtype: ``auto``, ``float32``, ``float16`` or ``bfloat16``.

    Example:
        >>> dec = RefLayerDecomposer(model="runs/rl/export/reflayer", steps=20)
        >>> rgba = dec.layer(image, Prompt(text="the white horse", boxes=[[80, 40, 400, 380]]))
    """

    key = "decomposer.model"
    marker = "reflayer_config.json"

    def __init__(self, model: str = "", steps: int = 28, resolution: int = 512, shift: float = 1.0,
                 inpaint_method: str = "harmonic", dtype: str = "auto") -> None:
        if steps < 1:
            raise ValueError(f"decomposer.steps must be >= 1, got {steps}")
        if resolution < 0:
            raise ValueError(f"decomposer.resolution must be >= 0, got {resolution}")
        super().__init__(model or "", dtype)
        self.steps, self.resolution, self.shift = int(steps), int(resolution), float(shift)
        self.inpaint_method = inpaint_method  # the sampler draws from self.seed (pipeline.seed)

    def missing_weights(self) -> list[str]:
        """One line per missing model (local check only; see :mod:`layerkit.modules.hub`)."""
        from layerkit.modules.decomposer.reflayer_nets import missing_files

        return self.folder_missing("RefLayer", missing_files, "layerkit train reflayer_tiny", "RUN/export/reflayer")

    def _source(self) -> tuple[str, dict[str, Any]]:
        return self.checked_source()

    def _load(self, source: str, kwargs: dict[str, Any], dtype: Any) -> Any:
        from layerkit.modules.decomposer.reflayer_nets import RefLayerModel

        return RefLayerModel.from_pretrained(source, torch_dtype=dtype, **kwargs)

    def _place(self, obj: Any, dtype: Any) -> None:
        obj.to(device=self.device, dtype=dtype).eval()

    def layer(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """The complete layer of the object ``prompt`` refers to, ``H×W×4`` straight RGBA float32.

        Args:
            image: ``H×W×3`` in ``[0, 1]``.
            prompt: any mix of points, boxes, mask and text (pixel coordinates of ``image``).
        """
        import cv2
        import torch

        from layerkit.modules.decomposer.reflayer_nets import draw_canvas
        from layerkit.ops.latent import crop_to, pad_to_multiple

        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be H×W×3, got {image.shape}")
        model = self.loaded
        h, w = image.shape[:2]
        k = self.resolution / max(h, w) if self.resolution > 0 else 1.0
        size = (max(1, round(w * k)), max(1, round(h * k)))
        img = cv2.resize(image, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC) if k != 1 else image
        mask = None
        if prompt.mask is not None:
            mask = cv2.resize(np.asarray(prompt.mask, np.float32), size, interpolation=cv2.INTER_NEAREST)
        canvas = draw_canvas((size[1], size[0]), None if prompt.points is None else np.asarray(prompt.points) * k,
                             prompt.labels, None if prompt.boxes is None else np.asarray(prompt.boxes) * k, mask)
        dev = torch.device(self.device)

        def tensor(x: np.ndarray) -> Any:
            t = torch.from_numpy(np.ascontiguousarray(np.clip(x, 0, 1).transpose(2, 0, 1), dtype=np.float32))[None]
            return pad_to_multiple(t, model.multiple)

        (x, hw), (c, _) = tensor(img), tensor(canvas)
        with torch.inference_mode():
            rgb, alpha = self.sample(model, x.to(dev), c.to(dev), [prompt.text])
        out = np.concatenate([crop_to(rgb, hw)[0].float().cpu().numpy().transpose(1, 2, 0),
                              crop_to(alpha, hw)[0].float().cpu().numpy().transpose(1, 2, 0)], axis=2)
        if k != 1:
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
        return np.clip(out, 0, 1).astype(np.float32)

    def sample(self, model: Any, image: Any, canvas: Any, texts: list[str | None]) -> tuple[Any, Any]:
        """Integrate the flow for a batch: ``image``/``canvas`` ``B×3×H×W`` on the device → ``(RGB, alpha)``."""
        import torch
        from diffusers import FlowMatchEulerDiscreteScheduler

        cond = torch.cat([model.encode(image), model.encode(canvas)], dim=1)
        text = model.encode_text(texts, image.device)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        lat = torch.randn((image.shape[0], model.latent_channels, *cond.shape[-2:]), generator=gen).to(image.device, cond.dtype)
        sched = FlowMatchEulerDiscreteScheduler.from_config(model.scheduler_config, shift=self.shift)
        sched.set_timesteps(self.steps, device=image.device)
        for i, t in enumerate(sched.timesteps):
            sigma = sched.sigmas[i].to(lat).expand(lat.shape[0])
            v = model.predict(lat, sigma, cond, text)
            lat = sched.step(v, t, lat).prev_sample
        return model.decode(lat)

    def __call__(self, image: np.ndarray, alpha: np.ndarray, prompt: Prompt | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(F, B)``: the complete layer's colour and the image with that layer's region inpainted.

        Args:
            image: ``H×W×3`` in ``[0, 1]``.
            alpha: ``H×W`` matte of the earlier stages (used as a mask prompt when ``prompt`` has
                none and it is not empty).
            prompt: the user's prompt.
        """
        from layerkit.ops.inpainting import inpaint

        if alpha.shape != image.shape[:2]:
            raise ValueError(f"alpha must be H×W like the image, got {alpha.shape} and {image.shape}")
        p = prompt if prompt is not None else Prompt()
        if p.mask is None and (alpha >= 0.5).any():
            p = Prompt(points=p.points, labels=p.labels, boxes=p.boxes, mask=alpha >= 0.5, text=p.text)
        rgba = self.layer(image, p)
        hole = np.maximum(rgba[..., 3], alpha) > 0.01
        bg = inpaint(image, hole, self.inpaint_method) if hole.any() and not hole.all() else image.copy()
        return rgba[..., :3], bg
