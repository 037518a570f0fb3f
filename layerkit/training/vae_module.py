"""Training of a small ``AutoencoderKL`` for FBDD runs without a pretrained Stable Diffusion
VAE (no hub here): L1 reconstruction + a small KL term on composites and their layers.

Exported as a diffusers folder (``RUN/export/vae``) whose ``scaling_factor`` is set to
``1 / std`` of the validation latents, so scaled latents have about unit variance (the
convention of Stable Diffusion's 0.18215).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from layerkit.training.base import TrainModule


class VAEModule(TrainModule):
    """AutoencoderKL training.

    Args:
        vae: a diffusers ``AutoencoderKL``.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        ema_decay: EMA decay (0 = off).
        kl_weight: weight of the KL divergence to N(0, 1).
    """

    def __init__(self, vae: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0, warmup_steps: int = 0,
                 ema_decay: float = 0.0, kl_weight: float = 1e-6) -> None:
        super().__init__({"vae": vae}, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, ema_decay=ema_decay)
        self.save_hyperparameters(ignore=["vae"])
        self._sq: list[torch.Tensor] = []

    @staticmethod
    def images(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Composites, foregrounds and backgrounds of a batch, ``3B×3×S×S`` in ``[-1, 1]``."""
        return torch.cat([batch["image"], batch["fg"], batch["bg"]]) * 2 - 1

    def step(self, batch: dict[str, torch.Tensor], vae: nn.Module, sample: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        x = self.images(batch)
        post = vae.encode(x).latent_dist  # type: ignore[operator]
        z = post.sample() if sample else post.mode()
        rec = vae.decode(z).sample  # type: ignore[operator]
        l1 = F.l1_loss(rec, x)
        kl = post.kl().mean() / x[0].numel()
        return {"l1": l1, "kl": kl, "loss": l1 + self.hparams.kl_weight * kl}, rec, z

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses, _, _ = self.step(batch, self.nets["vae"], sample=True)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch["image"].shape[0])
        return losses["loss"]

    def on_validation_epoch_start(self) -> None:
        self._sq = []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        losses, rec, z = self.step(batch, self.eval_nets()["vae"], sample=False)
        x = self.images(batch)
        mse = ((rec.clamp(-1, 1) - x) / 2).pow(2).mean(dim=(1, 2, 3))
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, batch_size=batch["image"].shape[0])
        self.log("val/psnr", (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean(), batch_size=batch["image"].shape[0])
        self._sq.append(z.float().pow(2).mean().detach().cpu())
        n = batch["image"].shape[0]
        self.keep_images(batch_idx, {"input": (x[:n] + 1) / 2, "recon": (rec[:n] + 1) / 2,
                                     "bg": (x[2 * n:] + 1) / 2, "bg_recon": (rec[2 * n:] + 1) / 2})

    def latent_std(self) -> float:
        """RMS of the last validation's unscaled latents (1.0 before any validation)."""
        return float(torch.stack(self._sq).mean().sqrt()) if self._sq else 1.0

    def export(self, folder: str | os.PathLike, meta: dict[str, Any]) -> Path:
        """Write ``folder/vae/`` (a diffusers AutoencoderKL folder, ``scaling_factor`` = 1 / latent RMS)."""
        vae = self.eval_nets()["vae"]
        vae.register_to_config(scaling_factor=1.0 / max(self.latent_std(), 1e-6))  # type: ignore[operator]
        out = Path(folder) / "vae"
        vae.save_pretrained(out)  # type: ignore[operator]
        return out


def build(model: dict[str, Any], optim: dict[str, Any]) -> VAEModule:
    """``model`` keys: ``AutoencoderKL`` arguments (``block_out_channels``, ``layers_per_block``,
    ``latent_channels``, ``norm_num_groups``) and ``kl_weight``. Each block halves the size,
    except the first."""
    from diffusers import AutoencoderKL

    from layerkit.training.config import check_keys

    m = dict(model)
    kl_weight = float(m.pop("kl_weight", 1e-6))
    check_keys("model", m, AutoencoderKL.__init__, exclude=("down_block_types", "up_block_types"))
    n = len(m.get("block_out_channels", (64,)))
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                        **{k: tuple(v) if isinstance(v, list) else v for k, v in m.items()})
    return VAEModule(vae, kl_weight=kl_weight, **optim)
