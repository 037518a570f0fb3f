"""Training configs: dataclass schemas, reading (shipped name or YAML path) and ``key=value``
overrides. A config has the sections ``data`` (:class:`~layerkit.training.datamodule.CompositeDataModule`
arguments), ``model`` (the task's net and loss arguments, checked against its builder),
``optim`` (:class:`OptimConfig`) and ``trainer`` (:class:`TrainerConfig`, Lightning ``Trainer``
arguments), plus a few run-wide keys (:class:`TrainConfig`)::

    task: hfa
    data: {fg_dir: null, bg_dir: null, size: 128, batch_size: 8}
    model: {channels: [24, 48, 96]}
    optim: {lr: 2.0e-4}
    trainer: {max_epochs: 20, precision: 32-true}
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from layerkit.errors import ConfigError

#: task → module with ``build(model, optim) -> TrainModule``
TASKS: dict[str, str] = {
    "hfa": "layerkit.training.hfa_module",
    "fbdd": "layerkit.training.fbdd_module",
    "vae": "layerkit.training.vae_module",
    "reflayer": "layerkit.training.reflayer_module",
}
#: loggers ``trainer`` can write to
LOGGERS = ("csv", "tensorboard")


@dataclass
class OptimConfig:
    """Optimizer (AdamW) settings."""

    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    ema_decay: float = 0.0


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.Trainer`` that layerkit exposes (Lightning's own meanings)."""

    max_epochs: int = 10
    max_steps: int = -1
    max_time: Any = None
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    val_check_interval: Any = 1.0
    check_val_every_n_epoch: int = 1
    limit_train_batches: Any = 1.0
    limit_val_batches: Any = 1.0
    num_sanity_val_steps: int = 1
    gradient_clip_val: Any = None
    accumulate_grad_batches: int = 1
    fast_dev_run: Any = False
    deterministic: Any = False
    enable_progress_bar: bool = True


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        name: run name (used in ``output_dir``).
        task: ``hfa``, ``fbdd`` or ``vae`` (see :data:`TASKS`).
        seed: global seed (nets, data split, validation samples).
        output_dir: run folder: ``checkpoints/``, ``logs/``, ``export/``.
        logger: ``csv`` or ``tensorboard``.
        threads: ``torch.set_num_threads`` of the training process (0 = torch's default).
        val_images: samples per validation image grid.
    """

    name: str = "run"
    task: str = "hfa"
    seed: int = 0
    output_dir: str = "runs/${name}"
    logger: str = "csv"
    threads: int = 0
    val_images: int = 4
    data: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def check_keys(section: str, values: Mapping[str, Any], builder: Callable[..., Any], exclude: Sequence[str] = ()) -> None:
    """Raise :class:`ConfigError` for a key ``builder`` does not take (the valid keys are listed)."""
    params = inspect.signature(builder).parameters
    valid = sorted(n for n, p in params.items() if n not in ("self", *exclude) and p.kind != p.VAR_KEYWORD)
    for key in values:
        if key not in valid:
            raise ConfigError(f"unknown key '{section}.{key}'; valid keys: {', '.join(valid)}")


def load_train_config(name_or_path: str | os.PathLike, overrides: Sequence[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a shipped training config (``hfa``) or a YAML path, apply overrides, validate.

    Args:
        name_or_path: name in ``layerkit/configs/train/`` or a ``.yaml`` path.
        overrides: ``["data.fg_dir=/x", ...]`` or ``{"data.fg_dir": "/x"}``.

    Returns:
        A plain dict with every section filled with its defaults; ``${...}`` resolved.

    Raises:
        ConfigError: unknown config, section or key, a wrong type, an unknown task or logger.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from layerkit.config import apply_overrides, read_yaml

    raw = apply_overrides(read_yaml(name_or_path, kind="train"), overrides)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), raw)
        out: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        msg = str(e).splitlines()[0]
        key = getattr(e, "full_key", None)
        raise ConfigError(f"training config {str(name_or_path)!r}: {msg}" + (f" (key {key})" if key else "")
                          + f"; sections: {', '.join(f.name for f in dataclasses.fields(TrainConfig))}") from None
    if out["task"] not in TASKS:
        raise ConfigError(f"unknown task {out['task']!r}; valid tasks: {', '.join(TASKS)}")
    if out["logger"] not in LOGGERS:
        raise ConfigError(f"unknown logger {out['logger']!r}; valid loggers: {', '.join(LOGGERS)}")
    from layerkit.training.datamodule import CompositeDataModule

    if out["task"] == "reflayer":
        from layerkit.training.reflayer_module import RefLayerDataModule

        check_keys("data", out["data"], RefLayerDataModule)
    else:
        check_keys("data", out["data"], CompositeDataModule)
    _check_strategy(out["trainer"]["strategy"])
    return out


def _check_strategy(name: str) -> None:
    from lightning.pytorch.strategies import StrategyRegistry

    valid = ["auto", *StrategyRegistry.available_strategies()]
    if name not in valid:
        raise ConfigError(f"unknown trainer.strategy {name!r}; Lightning strategies: {', '.join(sorted(valid))}")
