"""Training of the HFA nets (LayeringDiff §3.4): FAN with an MSE to ``F_gt`` where ``α > 0``
(each pixel weighted by ``α``, its weight in the composite — unweighted, the near-transparent
fringe, where ``F_gt`` is barely defined, dominates the loss);
BAN with ``L_MSE(B, B_gt) + λ·L_H(B, B̂)`` (Eq. 2–3, ``λ = 0.2``); both after the exact-copy rule.

A batch (from :class:`~layerkit.training.datamodule.CompositeDataModule` with a ``hat``
source) holds ``image``, ``alpha``, ``fg``, ``bg``, ``fg_hat``, ``bg_hat`` (``B×C×S×S``).
Validation also scores the weight-free prior (the wavelet rule the nets build on, suffix
``_prior``) and the unrefined ``F̂``/``B̂`` after the copy rule (suffix ``_hat``), so the gain of
the nets is visible in the logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from layerkit.modules.refiner.hfa_nets import AlignmentNet, copy_visible, save_checkpoint
from layerkit.training.base import TrainModule
from layerkit.training.losses import ban_loss, band_sharpness, bg_psnr_occluded, fg_l1_weighted, masked_mse


class HFAModule(TrainModule):
    """FAN + BAN training.

    Args:
        fan: foreground alignment net (``AlignmentNet("foreground", ...)``).
        ban: background alignment net (``AlignmentNet("background", ...)``).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        ema_decay: EMA decay of the nets (0 = off).
        hf_weight: ``λ`` of Eq. 2.
        hf_levels: Haar scales of Eq. 3.
        opaque: alpha at and above which ``F = C``.
        clear: alpha at and below which ``B = C``.
    """

    def __init__(self, fan: nn.Module, ban: nn.Module, lr: float = 2e-4, weight_decay: float = 0.0, warmup_steps: int = 100,
                 ema_decay: float = 0.0, hf_weight: float = 0.2, hf_levels: int = 3, opaque: float = 0.999,
                 clear: float = 0.001) -> None:
        super().__init__({"fan": fan, "ban": ban}, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
                         ema_decay=ema_decay)
        self.save_hyperparameters(ignore=["fan", "ban"])
        self.thresholds = (float(opaque), float(clear))

    def refine(self, batch: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F, B)``, ``B×3×S×S``, after the nets and the exact-copy rule."""
        nets = self.nets if nets is None else nets
        c, a = batch["image"], batch["alpha"]
        f = copy_visible(nets["fan"](c, a, batch["fg_hat"]), c, a, "foreground", *self.thresholds)
        b = copy_visible(nets["ban"](c, a, batch["bg_hat"]), c, a, "background", *self.thresholds)
        return f, b

    def losses(self, batch: dict[str, torch.Tensor], f: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"fan", "ban", "loss"}`` (loss = fan + ban)."""
        l_fan = masked_mse(f, batch["fg"], batch["alpha"])
        l_ban = ban_loss(b, batch["bg"], batch["bg_hat"], self.hparams.hf_weight, self.hparams.hf_levels)
        return {"fan": l_fan, "ban": l_ban, "loss": l_fan + l_ban}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        f, b = self.refine(batch)
        losses = self.losses(batch, f, b)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=f.shape[0])
        return losses["loss"]

    def _metrics(self, batch: dict[str, torch.Tensor], f: torch.Tensor, b: torch.Tensor, suffix: str) -> dict[str, torch.Tensor]:
        a = batch["alpha"]
        psnr = bg_psnr_occluded(b.clamp(0, 1), batch["bg"], a)
        ratio, err = band_sharpness(b.clamp(0, 1), batch["bg"], a)
        return {f"val/bg_psnr_occ{suffix}": psnr.nanmean(), f"val/fg_l1{suffix}": fg_l1_weighted(f.clamp(0, 1), batch["fg"], a).mean(),
                f"val/bg_band_hf_db{suffix}": err.nanmean(), f"val/bg_band_sharp{suffix}": ratio.nanmean()}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        nets = self.eval_nets()
        f, b = self.refine(batch, nets)
        n = f.shape[0]
        self.log_dict({f"val/{k}": v for k, v in self.losses(batch, f, b).items()}, batch_size=n, prog_bar=False)
        self.log_dict(self._metrics(batch, f, b, ""), batch_size=n)
        c, a = batch["image"], batch["alpha"]
        fp = copy_visible(nets["fan"].prior(c, a, batch["fg_hat"]), c, a, "foreground", *self.thresholds)
        bp = copy_visible(nets["ban"].prior(c, a, batch["bg_hat"]), c, a, "background", *self.thresholds)
        self.log_dict(self._metrics(batch, fp, bp, "_prior"), batch_size=n)
        fh = copy_visible(batch["fg_hat"], c, a, "foreground", *self.thresholds)
        bh = copy_visible(batch["bg_hat"], c, a, "background", *self.thresholds)
        self.log_dict(self._metrics(batch, fh, bh, "_hat"), batch_size=n)
        self.keep_images(batch_idx, {"composite": c, "alpha": a, "bg_hat": batch["bg_hat"], "bg_prior": bp, "bg": b,
                                     "bg_gt": batch["bg"], "fg_hat": batch["fg_hat"] * a, "fg": f * a, "fg_gt": batch["fg"] * a})

    def export(self, folder: str | os.PathLike, meta: dict[str, Any]) -> Path:
        """Write ``folder/hfa.pt`` (loadable by ``HFARefiner(checkpoint=...)``)."""
        nets = self.eval_nets()
        path = Path(folder) / "hfa.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, nets["fan"], nets["ban"], meta)  # type: ignore[arg-type]
        return path


def build(model: dict[str, Any], optim: dict[str, Any]) -> HFAModule:
    """Build FAN and BAN from the ``model`` section, then the module from ``optim``.

    ``model`` keys: ``channels``, ``prior_levels``, ``prior_pool`` (both nets), ``hf_weight``, ``hf_levels``,
    ``opaque``, ``clear``.
    """
    from layerkit.training.config import check_keys

    m = dict(model)
    net_kw = {k: m.pop(k) for k in ("channels", "prior_levels", "prior_pool") if k in m}
    check_keys("model", m, HFAModule, exclude=("fan", "ban", "lr", "weight_decay", "warmup_steps", "ema_decay"))
    return HFAModule(AlignmentNet("foreground", **net_kw), AlignmentNet("background", **net_kw), **m, **optim)
