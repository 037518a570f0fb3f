"""Run a training config: ``Trainer.fit`` with checkpoints, resume, logs, validation images and
an export of the best weights in the format the pipeline stage loads.

Run folder (``output_dir``)::

    config.yaml              the resolved config
    checkpoints/best.ckpt    lowest val/loss; last.ckpt for --resume
    logs/version_N/          metrics.csv (or TensorBoard events), images/val_epoch*.png
    export/                  hfa.pt | fbdd/ | vae/  (+ export.json: metrics, command, split)
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from layerkit.errors import ConfigError
from layerkit.progress import is_quiet
from layerkit.training.config import TASKS


def build_trainer(cfg: dict[str, Any], out: Path) -> L.Trainer:
    """The Lightning ``Trainer`` of a run: loggers, checkpointing and image callbacks attached."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from layerkit.training.callbacks import ValidationImages

    if cfg["logger"] == "tensorboard":
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            logger: Any = TensorBoardLogger(save_dir=str(out), name="logs")
            _ = logger.experiment
        except ModuleNotFoundError as e:
            raise ConfigError(f"logger 'tensorboard' needs the tensorboard package ({e}); pip install tensorboard, "
                              "or set logger=csv") from None
    else:
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(save_dir=str(out), name="logs")
    ckpt = ModelCheckpoint(dirpath=str(out / "checkpoints"), filename="best", monitor="val/loss", mode="min",
                           save_top_k=1, save_last=True, enable_version_counter=False)
    args = {k: v for k, v in cfg["trainer"].items() if k != "default_root_dir"}
    if is_quiet():  # --quiet: Lightning's TQDM bar off too
        args["enable_progress_bar"] = False
    return L.Trainer(default_root_dir=str(out), logger=logger, callbacks=[ckpt, ValidationImages(cfg["val_images"])],
                     **args)


def run_dir(cfg: dict[str, Any]) -> Path:
    """The run folder: ``trainer.default_root_dir`` when set (Lightning's name for it), else ``output_dir``."""
    return Path(cfg["trainer"].get("default_root_dir") or cfg["output_dir"]).expanduser()


def build_module(cfg: dict[str, Any]) -> Any:
    """The task's LightningModule with freshly built nets."""
    return importlib.import_module(TASKS[cfg["task"]]).build(dict(cfg["model"]), dict(cfg["optim"]))


def train(cfg: dict[str, Any], resume: str | None = None, command: str = "") -> dict[str, Any]:
    """Fit, then export the best (or, without validation checkpoints, the final) weights.

    Args:
        cfg: a config from :func:`~layerkit.training.config.load_train_config`.
        resume: ``"last"`` (the run's ``checkpoints/last.ckpt``), a ``.ckpt`` path, or None.
        command: the command line, stored in the export's metadata.

    Returns:
        ``{"export": path, "best_checkpoint": path | None, "metrics": {...}, "seconds": float}``.

    Raises:
        ConfigError: nothing to resume, or a bad trainer argument.
        DataError: missing or empty data folders.
    """
    from layerkit.config import dump_config
    from layerkit.training.datamodule import CompositeDataModule

    t0 = time.time()
    if cfg["threads"] > 0:
        torch.set_num_threads(int(cfg["threads"]))
    out = run_dir(cfg)
    ckpt_path = None
    if resume:
        ckpt_path = out / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
        if not ckpt_path.is_file():
            raise ConfigError(f"nothing to resume: checkpoint {str(ckpt_path)!r} does not exist "
                              f"(--resume takes 'last' for {str(out / 'checkpoints')!r} or a .ckpt path)")
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    data = dict(cfg["data"])
    data.setdefault("seed", int(cfg["seed"]))
    if cfg["task"] == "reflayer":  # triplets (image, prompt mix, complete layer), not composites
        from layerkit.training.reflayer_module import RefLayerDataModule

        dm: Any = RefLayerDataModule(**data)
    else:
        dm = CompositeDataModule(**data)
    dm.setup("fit")  # bad data folders fail here, before anything is written
    module = build_module(cfg)
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    try:
        trainer = build_trainer(cfg, out)
    except (TypeError, ValueError) as e:  # Lightning rejects a trainer value
        raise ConfigError(f"bad trainer setting: {str(e).splitlines()[0]}") from None
    trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""  # type: ignore[union-attr]
    if best and Path(best).is_file():
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    meta = {"task": cfg["task"], "command": command, "best_checkpoint": best or None, "metrics": metrics,
            "global_step": int(trainer.global_step), "split": dm.split, "config": cfg}
    export = None
    if trainer.is_global_zero:
        export = module.export(out / "export", meta)
        (out / "export" / "export.json").write_text(json.dumps({**meta, "export": str(export)}, indent=1, default=str))
    return {"export": str(export) if export else None, "best_checkpoint": best or None, "metrics": metrics,
            "seconds": time.time() - t0}
