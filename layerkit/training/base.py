"""What every layerkit LightningModule shares: AdamW with linear warm-up, an optional EMA copy
of the nets, and the validation-image hand-off to :class:`~layerkit.training.callbacks.ValidationImages`.

Subclasses receive their nets (plain ``nn.Module``s built in :mod:`layerkit.modules`) and add
only the loss, the metrics and an ``export(folder, meta) -> Path`` method that writes the
trained nets in the format their stage loads.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn as nn


class TrainModule(L.LightningModule):
    """Base LightningModule.

    Args:
        nets: the trainable nets by name (their parameters are optimised).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: steps of linear learning-rate warm-up from 0.
        ema_decay: decay of an exponential moving average of the nets used for validation and
            export; 0 disables it.
    """

    def __init__(self, nets: dict[str, nn.Module], lr: float = 2e-4, weight_decay: float = 0.0, warmup_steps: int = 0,
                 ema_decay: float = 0.0) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(nets)
        self.lr, self.weight_decay, self.warmup_steps = float(lr), float(weight_decay), int(warmup_steps)
        self.ema: nn.Module | None = None
        if ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.nets, multi_avg_fn=get_ema_multi_avg_fn(float(ema_decay)), use_buffers=True)
            self.ema.requires_grad_(False)
        #: ``{name: B×3×H×W}`` images of the first validation batch, read by the image callback
        self.val_images: dict[str, torch.Tensor] = {}

    def eval_nets(self) -> nn.ModuleDict:
        """The nets to validate and export: the EMA copy when enabled."""
        return self.ema.module if self.ema is not None else self.nets  # type: ignore[return-value]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.nets)  # type: ignore[operator]

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.nets.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        warm = max(1, self.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def keep_images(self, batch_idx: int, images: dict[str, torch.Tensor]) -> None:
        """Keep the first validation batch's images (``B×3×H×W`` or ``B×1×H×W`` in ``[0, 1]``)."""
        if batch_idx == 0:
            self.val_images = {k: v.detach().float().clamp(0, 1).cpu() for k, v in images.items()}
