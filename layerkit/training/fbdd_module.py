"""Training of the FBDD UNets (LayeringDiff §3.4): v-prediction loss on the foreground and the
background latents, conditioned on the composite latent and the alpha matte; the VAE is frozen.

A batch (from :class:`~layerkit.training.datamodule.CompositeDataModule`, ``hat: none``,
``fill_foreground: true``) holds ``image``, ``alpha``, ``fg``, ``bg`` (``B×C×S×S``, ``S`` a
multiple of the model's size multiple). Validation computes the loss at fixed noise and
timesteps (comparable across epochs) and samples the first images with a few DDIM steps,
scoring the sampled layers (``val/sample_*``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from layerkit.training.base import TrainModule
from layerkit.training.losses import bg_psnr_occluded, fg_l1_weighted


class FBDDModule(TrainModule):
    """FBDD training.

    Args:
        model: an :class:`~layerkit.modules.decomposer.fbdd_nets.FBDDModel`.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        ema_decay: EMA decay of the model (0 = off).
        sample_steps: denoising steps of the validation samples.
        sample_scheduler: scheduler of the validation samples (``ddim``, ``dpm++``, …).
        sample_images: images sampled at each validation.
    """

    def __init__(self, model: nn.Module, lr: float = 1e-4, weight_decay: float = 0.0, warmup_steps: int = 0,
                 ema_decay: float = 0.0, sample_steps: int = 10, sample_scheduler: str = "ddim", sample_images: int = 4) -> None:
        super().__init__({"fbdd": model}, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, ema_decay=ema_decay)
        self.save_hyperparameters(ignore=["model"])
        from diffusers import DDPMScheduler

        self.noise_schedule = DDPMScheduler.from_config(model.scheduler_config)  # type: ignore[arg-type]

    def losses(self, batch: dict[str, torch.Tensor], model: nn.Module, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``{"fg", "bg", "loss"}``: MSE between predicted and true ``v`` for each layer."""
        with torch.no_grad():
            cond = model.condition(model.encode(batch["image"]), batch["alpha"])  # type: ignore[operator]
            targets = {"fg": model.encode(batch["fg"]), "bg": model.encode(batch["bg"])}  # type: ignore[operator]
        n_steps = int(self.noise_schedule.config.num_train_timesteps)
        out: dict[str, torch.Tensor] = {}
        for layer, lat in targets.items():
            noise = torch.randn(lat.shape, generator=generator).to(lat)
            t = torch.randint(0, n_steps, (lat.shape[0],), generator=generator).to(lat.device)
            noisy = self.noise_schedule.add_noise(lat, noise, t)
            v = self.noise_schedule.get_velocity(lat, noise, t)
            out[layer] = F.mse_loss(model.predict(layer, noisy, t, cond).float(), v.float())  # type: ignore[operator]
        out["loss"] = out["fg"] + out["bg"]
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch, self.nets["fbdd"])
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch["image"].shape[0])
        return losses["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        model = self.eval_nets()["fbdd"]
        n = batch["image"].shape[0]
        gen = torch.Generator().manual_seed(1000 + batch_idx)
        self.log_dict({f"val/{k}": v for k, v in self.losses(batch, model, gen).items()}, batch_size=n)
        if batch_idx != 0 or self.hparams.sample_images <= 0:
            return
        from layerkit.modules.decomposer.fbdd import FBDDDecomposer

        sampler = FBDDDecomposer(scheduler=self.hparams.sample_scheduler, steps=self.hparams.sample_steps)
        k = min(n, int(self.hparams.sample_images))
        pairs = [sampler.sample(model, batch["image"][i:i + 1], batch["alpha"][i:i + 1]) for i in range(k)]
        f = torch.cat([p[0] for p in pairs]).float()
        b = torch.cat([p[1] for p in pairs]).float()
        a = batch["alpha"][:k]
        self.log_dict({"val/sample_bg_psnr_occ": bg_psnr_occluded(b, batch["bg"][:k], a).nanmean(),
                       "val/sample_fg_l1": fg_l1_weighted(f, batch["fg"][:k], a).mean()}, batch_size=k)
        self.keep_images(0, {"composite": batch["image"][:k], "alpha": a, "fg": f, "fg_gt": batch["fg"][:k],
                             "bg": b, "bg_gt": batch["bg"][:k], "recomposed": a * f + (1 - a) * b})

    def export(self, folder: str | os.PathLike, meta: dict[str, Any]) -> Path:
        """Write ``folder/fbdd/`` (loadable by ``FBDDDecomposer(model=...)``)."""
        import json

        out = self.eval_nets()["fbdd"].save_pretrained(Path(folder) / "fbdd")  # type: ignore[operator]
        (out / "train_meta.json").write_text(json.dumps(meta, indent=1, default=str))
        return out


def build(model: dict[str, Any], optim: dict[str, Any]) -> FBDDModule:
    """Build the FBDD model from the ``model`` section, then the module.

    ``model`` keys: ``pretrained`` (SD2-inpainting hub id or folder; None = from scratch),
    ``vae`` (AutoencoderKL folder or hub id; required from scratch), ``alpha_layout``,
    ``unet`` (``UNet2DConditionModel`` arguments, from scratch), ``scheduler`` (noise-schedule
    overrides), ``null_tokens``, and the module's ``sample_steps``, ``sample_scheduler``, ``sample_images``.
    """
    from layerkit.errors import ConfigError
    from layerkit.modules.decomposer.fbdd_nets import FBDDModel
    from layerkit.training.config import check_keys

    m = dict(model)
    pretrained, vae_name = m.pop("pretrained", None), m.pop("vae", None)
    layout, unet = m.pop("alpha_layout", "unshuffle"), m.pop("unet", None)
    sched, null_tokens = m.pop("scheduler", None) or {}, int(m.pop("null_tokens", 1))
    check_keys("model", m, FBDDModule, exclude=("model", "lr", "weight_decay", "warmup_steps", "ema_decay"))
    if pretrained:
        net = FBDDModel.from_inpainting(pretrained, layout, vae=vae_name, scheduler=sched)
    else:
        if not vae_name or not unet:
            raise ConfigError("an FBDD trained from scratch needs model.vae (an AutoencoderKL folder, e.g. from "
                              "'layerkit train vae_tiny': RUN/export/vae) and model.unet; or set model.pretrained to an "
                              "SD2-inpainting model")
        from diffusers import AutoencoderKL

        from layerkit.modules.hub import pretrained_source

        src, kw = pretrained_source(vae_name, "model.vae")
        try:
            vae = AutoencoderKL.from_pretrained(src, **kw)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load model.vae={vae_name}: {str(e).splitlines()[0]}") from None
        net = FBDDModel.from_scratch(vae, unet, layout, scheduler=sched, null_tokens=null_tokens)
    return FBDDModule(net, **m, **optim)
