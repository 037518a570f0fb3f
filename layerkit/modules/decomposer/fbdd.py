"""FBDD decomposer (LayeringDiff §3.3): image + alpha → (F̂, B̂) by two latent-diffusion UNets.

The composite is encoded by the VAE, alpha is brought to latent resolution (pixel unshuffle
or resize), and two latents start from Gaussian noise and are denoised — one by the
foreground UNet, one by the background UNet — with a swappable scheduler (DDIM, DPM-Solver++,
…), then decoded. The model folder comes from ``layerkit train fbdd`` (``RUN/export/fbdd``)
or a hub id holding the same layout (:mod:`layerkit.modules.decomposer.fbdd_nets`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerkit.modules.base import Decomposer
from layerkit.modules.hub import PretrainedStage
from layerkit.progress import step_bar
from layerkit.types import Prompt

#: scheduler names → (diffusers class, extra config)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": ("EulerDiscreteScheduler", {}),
    "ddpm": ("DDPMScheduler", {"clip_sample": False}),
}


def make_scheduler(name: str, config: dict[str, Any]) -> Any:
    """A diffusers scheduler from the model's training schedule (``prediction_type`` = v).

    Raises:
        ConfigError: unknown scheduler name (the valid ones are listed).
    """
    import diffusers

    from layerkit.errors import ConfigError

    if name not in SCHEDULERS:
        raise ConfigError(f"unknown decomposer.scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
    cls_name, extra = SCHEDULERS[name]
    return getattr(diffusers, cls_name).from_config(config, **{**extra, "prediction_type": "v_prediction"})


class FBDDDecomposer(PretrainedStage, Decomposer):
    """Image + alpha → (F, B) with the FBDD dual-diffusion model.

    Args:
        model: FBDD model folder or hub id (``RUN/export/fbdd`` from ``layerkit train fbdd``).
        scheduler: ``ddim``, ``dpm++``, ``euler`` or ``ddpm``.
        steps: denoising steps.
        resolution: long side (pixels) the model runs at; the layers are resized back. 0 = the
            input size (rounded up to the model's size multiple).
        batch_layers: True → both UNets stay on the device and the F and B latents are stepped
            together (one scheduler call per step); False → one UNet on the device at a time
            (the other waits on the CPU), for small GPUs.
        dtype: ``auto`` (bfloat16/float16 on CUDA, float32 on CPU), ``float32``, ``float16``
            or ``bfloat16``.

    Example:
        >>> dec = FBDDDecomposer(model="runs/fbdd/export/fbdd", steps=20)
        >>> f, b = dec(image, alpha)          # H×W×3 float32 each
    """

    key = "decomposer.model"
    marker = "fbdd_config.json"

    def __init__(self, model: str = "", scheduler: str = "dpm++", steps: int = 25, resolution: int = 512,
                 batch_layers: bool = True, dtype: str = "auto") -> None:
        from layerkit.errors import ConfigError

        if scheduler not in SCHEDULERS:
            raise ConfigError(f"unknown decomposer.scheduler {scheduler!r}; valid: {', '.join(SCHEDULERS)}")
        if steps < 1:
            raise ConfigError(f"decomposer.steps must be >= 1, got {steps}")
        super().__init__(model or "", dtype)
        self.scheduler, self.steps, self.resolution = scheduler, int(steps), int(resolution)
        self.batch_layers = batch_layers

    def missing_weights(self) -> list[str]:
        """One line per missing model (local check only; see :mod:`layerkit.modules.hub`)."""
        from layerkit.modules.decomposer.fbdd_nets import missing_files

        return self.folder_missing("FBDD", missing_files, "layerkit train fbdd", "RUN/export/fbdd")

    def _source(self) -> tuple[str, dict[str, Any]]:
        return self.checked_source()

    def _load(self, source: str, kwargs: dict[str, Any], dtype: Any) -> Any:
        from layerkit.modules.decomposer.fbdd_nets import FBDDModel

        return FBDDModel.from_pretrained(source, torch_dtype=dtype, **kwargs)

    def _place(self, obj: Any, dtype: Any) -> None:
        """All on the device with ``batch_layers``; else the VAE on the device, the UNets on the CPU."""
        if self.batch_layers:
            obj.to(device=self.device, dtype=dtype).eval()
        else:
            obj.to(device="cpu", dtype=dtype).eval()
            obj.vae.to(self.device)

    def __call__(self, image: np.ndarray, alpha: np.ndarray, prompt: Prompt | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Decompose.

        Args:
            image: ``H×W×3`` composite in ``[0, 1]``.
            alpha: ``H×W`` matte in ``[0, 1]``.
            prompt: unused (FBDD runs with the stored null prompt).

        Returns:
            ``(F̂, B̂)``, ``H×W×3`` float32 in ``[0, 1]``.
        """
        import cv2
        import torch

        from layerkit.ops.latent import crop_to, pad_to_multiple

        if image.ndim != 3 or image.shape[2] != 3 or alpha.shape != image.shape[:2]:
            raise ValueError(f"image must be H×W×3 and alpha H×W of the same size, got {image.shape} and {alpha.shape}")
        model = self.loaded
        h, w = alpha.shape
        k = self.resolution / max(h, w) if self.resolution > 0 else 1.0
        size = (max(1, round(w * k)), max(1, round(h * k)))
        img = cv2.resize(image, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC) if k != 1 else image
        a = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR) if k != 1 else alpha
        dev = torch.device(self.device)
        x = torch.from_numpy(np.ascontiguousarray(np.clip(img, 0, 1).transpose(2, 0, 1), dtype=np.float32))[None]
        at = torch.from_numpy(np.ascontiguousarray(np.clip(a, 0, 1), dtype=np.float32))[None, None]
        x, hw = pad_to_multiple(x, model.multiple)
        at, _ = pad_to_multiple(at, model.multiple)
        with torch.inference_mode():
            layers = self.sample(model, x.to(dev), at.to(dev))
        out = [crop_to(layer, hw)[0].float().cpu().numpy().transpose(1, 2, 0) for layer in layers]
        if k != 1:
            out = [cv2.resize(o, (w, h), interpolation=cv2.INTER_CUBIC) for o in out]
        return tuple(np.clip(o, 0, 1).astype(np.float32) for o in out)  # type: ignore[return-value]

    def sample(self, model: Any, image: Any, alpha: Any) -> tuple[Any, Any]:
        """Denoise both layers. ``image`` ``1×3×H×W``, ``alpha`` ``1×1×H×W`` on the device, sides
        multiples of ``model.multiple``; returns ``(F̂, B̂)`` as ``1×3×H×W`` in ``[0, 1]``."""
        import torch

        dev = image.device
        vae_dev = next(model.vae.parameters()).device
        if vae_dev != dev:
            model.vae.to(dev)
        cond = model.condition(model.encode(image), alpha)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        shape = (2, model.latent_channels, *cond.shape[-2:])
        noise = torch.randn(shape, generator=gen).to(dev, cond.dtype)
        if self.batch_layers:
            sched = make_scheduler(self.scheduler, model.scheduler_config)
            sched.set_timesteps(self.steps, device=dev)
            lat = noise * sched.init_noise_sigma
            for t in step_bar(sched.timesteps, "FBDD"):
                inp = sched.scale_model_input(lat, t)
                v = torch.cat([model.predict("fg", inp[:1], t, cond), model.predict("bg", inp[1:], t, cond)])
                lat = sched.step(v, t, lat).prev_sample
        else:
            outs = []
            for i, (layer, unet) in enumerate((("fg", model.unet_fg), ("bg", model.unet_bg))):
                unet.to(dev)
                sched = make_scheduler(self.scheduler, model.scheduler_config)
                sched.set_timesteps(self.steps, device=dev)
                x = noise[i:i + 1] * sched.init_noise_sigma
                for t in step_bar(sched.timesteps, f"FBDD {layer}"):
                    x = sched.step(model.predict(layer, sched.scale_model_input(x, t), t, cond), t, x).prev_sample
                outs.append(x)
                unet.to("cpu")
            lat = torch.cat(outs)
        decoded = model.decode(lat)
        return decoded[:1], decoded[1:]
