"""Lightning callbacks of layerkit trainings."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch


def image_grid(images: dict[str, torch.Tensor], rows: int) -> np.ndarray:
    """Rows = samples, columns = the named images; ``H×W×3`` uint8.

    Args:
        images: ``{name: B×C×H×W}`` in ``[0, 1]``, ``C`` = 1 or 3, one size.
        rows: samples shown (at most ``B``).
    """
    cols = []
    for x in images.values():
        x = x[:rows].float().clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        cols.append(torch.cat(list(x), dim=1))  # 3×(rows·H)×W
    grid = torch.cat(cols, dim=2)
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


class ValidationImages(L.Callback):
    """After each validation, write the module's ``val_images`` as a PNG grid.

    Files go to ``LOG_DIR/images/val_epochEEE_stepSSSSSS.png`` (columns in the order the module
    gives them); a TensorBoard logger also receives the grid.

    Args:
        rows: samples per grid.
    """

    def __init__(self, rows: int = 4) -> None:
        self.rows = rows

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        images = getattr(pl_module, "val_images", None)
        if not images or trainer.sanity_checking or not trainer.is_global_zero or self.rows <= 0:
            return
        from PIL import Image

        grid = image_grid(images, self.rows)
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        out = log_dir / "images" / f"val_epoch{trainer.current_epoch:03d}_step{trainer.global_step:06d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(out)
        (log_dir / "images" / "columns.txt").write_text(" | ".join(images) + "\n")
        for logger in trainer.loggers:
            exp = getattr(logger, "experiment", None)
            if hasattr(exp, "add_image"):
                exp.add_image("val/images", grid, trainer.global_step, dataformats="HWC")
