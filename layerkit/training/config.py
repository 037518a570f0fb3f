"""Training configs: dataclass schemas, reading (shipped name or YAML path) and ``key=value``
overrides. A config has the sections ``data`` (:class:`~layerkit.training.datamodule.CompositeDataModule`
arguments), ``model`` (the task's net and loss arguments, checked against its builder),
``optim`` (:class:`OptimConfig`) and ``trainer`` (:func:`trainer_schema`: every Lightning ``Trainer``
argument), plus a few run-wide keys (:class:`TrainConfig`); all read and validated by the one
mechanism of :mod:`layerkit.config`::

    task: hfa
    data: {fg_dir: null, bg_dir: null, size: 128, batch_size: 8}
    model: {channels: [24, 48, 96]}
    optim: {lr: 2.0e-4}
    trainer: {max_epochs: 20, precision: 32-true}
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


#: layerkit's defaults for ``lightning.Trainer`` arguments (every other one keeps Lightning's default)
TRAINER_DEFAULTS: dict[str, Any] = {"max_epochs": 10, "precision": "32-true", "log_every_n_steps": 10,
                                    "num_sanity_val_steps": 1}
#: ``Trainer`` arguments layerkit sets itself: ``logger`` comes from the run's ``logger`` key,
#: ``callbacks`` are the checkpoint and validation-image callbacks.
TRAINER_OWN = ("logger", "callbacks")


def trainer_schema() -> type:
    """The ``trainer`` section's schema: every argument of ``lightning.Trainer`` (but
    :data:`TRAINER_OWN`), typed and defaulted from its signature, layerkit's :data:`TRAINER_DEFAULTS` on top."""
    import lightning as L

    from layerkit.schema import schema_of

    return schema_of(L.Trainer.__init__, exclude=TRAINER_OWN, defaults=TRAINER_DEFAULTS)


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
    trainer: dict = field(default_factory=dict)


def check_keys(section: str, values: Mapping[str, Any], builder: Callable[..., Any], exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Validate a ``model``/``data`` section against ``builder``'s signature (the pipeline stages'
    mechanism, :func:`layerkit.config.validate_args`); returns the converted values.

    Raises:
        ConfigError: an unknown key (the valid keys listed) or a wrong type.
    """
    from layerkit.schema import validate_args

    return validate_args(section, values, builder, exclude)


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
    from layerkit.config import compose
    from layerkit.schema import structured

    composed = compose(name_or_path, overrides, kind="train")
    raw = dict(composed.data)
    sections = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in raw:
        if key not in sections:
            raise ConfigError(f"{composed.source(key)}: unknown key {key!r} in training config {str(name_or_path)!r}; "
                              f"valid keys: {', '.join(sections)}")
    for key in ("data", "model", "optim", "trainer"):
        if not isinstance(raw.get(key) or {}, Mapping):
            raise ConfigError(f"{composed.source(key)}: section {key!r} must be a mapping, got {raw[key]!r}")
    trainer = structured(trainer_schema(), raw.pop("trainer", None) or {}, "trainer", composed)
    optim = structured(OptimConfig, raw.pop("optim", None) or {}, "optim", composed)
    out = structured(TrainConfig, raw, "run", composed)
    out["optim"], out["trainer"] = optim, trainer
    if out["task"] not in TASKS:
        raise ConfigError(f"unknown task {out['task']!r}; valid tasks: {', '.join(TASKS)}")
    if out["logger"] not in LOGGERS:
        raise ConfigError(f"unknown logger {out['logger']!r}; valid loggers: {', '.join(LOGGERS)}")
    from layerkit.training.datamodule import CompositeDataModule

    if out["task"] == "reflayer":
        from layerkit.training.reflayer_module import RefLayerDataModule

        out["data"] = check_keys("data", out["data"], RefLayerDataModule)
    else:
        out["data"] = check_keys("data", out["data"], CompositeDataModule)
    _check_strategy(out["trainer"]["strategy"])
    return out


def _check_strategy(name: str) -> None:
    from lightning.pytorch.strategies import StrategyRegistry

    valid = ["auto", *StrategyRegistry.available_strategies()]
    if name not in valid:
        raise ConfigError(f"unknown trainer.strategy {name!r}; Lightning strategies: {', '.join(sorted(valid))}")
