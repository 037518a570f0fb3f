"""The training-step stages of ``benchmarks/gpu.py``: one optimiser step of layerkit's FBDD and
HFA training modules (losses, backward, clipping, AdamW, LR schedule, EMA) on random data, timed
per precision with :class:`gpu_harness.Bench`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from gpu_harness import Bench
from gpu_models import build_fbdd

from layerkit.training.config import load_train_config


def _config(b: Bench, name: str) -> tuple[dict, dict]:
    """The shipped training config ``name`` (``<name>_tiny`` with ``--tiny``) and its optimiser
    settings (EMA off with ``--no-ema``)."""
    cfg = load_train_config(f"{name}_tiny" if b.tiny else name)
    optim = dict(cfg.get("optim") or {})
    if b.args.no_ema:
        optim["ema_decay"] = 0.0
    return cfg, optim


def _random_batch(b: Bench, batch: int, size: int, extra: tuple[tuple[str, int], ...]) -> dict[str, torch.Tensor]:
    """A seeded random training batch: image, alpha, fg, bg (plus ``extra`` ``(key, channels)``) on the device."""
    g = torch.Generator().manual_seed(0)
    keys = (("image", 3), ("alpha", 1), ("fg", 3), ("bg", 3), *extra)
    return {k: torch.rand(batch, c, size, size, generator=g).to(b.device) for k, c in keys}


def _train_rows(b: Bench, stage: str, module: Any, step_loss: Callable[[], torch.Tensor], batch: int, setting: str,
                precisions: list[str], clip: float | None) -> None:
    """Time one optimiser step (forward, backward, clipping, AdamW, LR schedule, EMA) per precision."""
    module.to(b.device)
    module.train()
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    params = [p for p in module.nets.parameters() if p.requires_grad]
    dev_type = "cuda" if b.cuda else "cpu"
    ema = "EMA" if module.ema is not None else "no EMA"
    for prec in precisions:
        def step() -> None:
            with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=prec == "bf16-mixed"):
                loss = step_loss()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if module.ema is not None:
                module.ema.update_parameters(module.nets)

        b.row(stage, f"{setting}, batch {batch}, {prec}, AdamW, {ema}", step,
              path="layerkit: training module losses + AdamW step (no Lightning Trainer)",
              dtype="bfloat16-autocast" if prec == "bf16-mixed" else "float32", params=sum(p.numel() for p in params),
              items=batch)
        opt.zero_grad(set_to_none=True)
        b.free()


def stage_fbdd_train(b: Bench, stage: str) -> None:
    """One FBDD training step (FBDDModule.losses on both UNets, backward, AdamW, EMA) at 512², bf16 autocast."""
    from layerkit.training.fbdd_module import FBDDModule

    args = b.args
    cfg, optim = _config(b, "fbdd")
    size = b.res(int(cfg["data"]["size"]), 32)
    batch = args.fbdd_batch or (2 if b.tiny else int(cfg["data"]["batch_size"]))
    model, build_s = b.timed_load(stage, "built random FBDD (fp32 master weights)", lambda: build_fbdd(b.tiny, b.build_device))
    module = FBDDModule(model, **optim)
    data = _random_batch(b, batch, size, ())
    clip = (cfg.get("trainer") or {}).get("gradient_clip_val")
    _train_rows(b, stage, module, lambda: module.losses(data, module.nets["fbdd"])["loss"], batch, f"{size}²",
                [p.strip() for p in args.fbdd_precision.split(",") if p.strip()], clip)
    del module, model, data


def stage_hfa_train(b: Bench, stage: str) -> None:
    """One HFA training step (HFAModule.refine + losses, backward, AdamW, EMA) at hfa.yaml's size."""
    from layerkit.training.hfa_module import build

    args = b.args
    cfg, optim = _config(b, "hfa")
    size = args.hfa_train_size or int(cfg["data"]["size"])
    batch = args.hfa_batch or int(cfg["data"]["batch_size"])
    torch.manual_seed(0)
    module = build(cfg["model"], optim)  # what `layerkit train hfa` builds; _train_rows moves it to the device
    data = _random_batch(b, batch, size, (("fg_hat", 3), ("bg_hat", 3)))

    def loss() -> torch.Tensor:
        f, bb = module.refine(data)
        return module.losses(data, f, bb)["loss"]

    precs = list(dict.fromkeys([str((cfg.get("trainer") or {}).get("precision", "32-true")), "bf16-mixed"]))
    _train_rows(b, stage, module, loss, batch, f"{size}² (channels {list(module.nets['fan'].channels)})", precs,
                (cfg.get("trainer") or {}).get("gradient_clip_val"))
    del module, data
