"""The timing harness of ``benchmarks/gpu.py``: :class:`Bench` (warm-up, median of N calls,
peak GPU memory per row, one error row per failure) and small helpers shared by the stages."""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

MiB = 2.0 ** 20


def one_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"[:300]


def n_params(*modules: Any) -> int:
    """Parameters of the ``nn.Module``s given (others ignored; shared parameters counted once)."""
    seen: set[int] = set()
    total = 0
    for m in modules:
        if isinstance(m, torch.nn.Module):
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
    return total


def pipe_modules(pipe: Any) -> list[Any]:
    """The ``nn.Module`` components of a diffusers pipeline."""
    return [v for v in pipe.components.values() if isinstance(v, torch.nn.Module)]


def dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def test_image(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth RGB picture with a soft disc and its alpha (``H×W×3``, ``H×W``, float32 in [0, 1])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    bg = np.stack([0.2 + 0.3 * xx / w, 0.5 + 0.2 * np.sin(yy / 17.0), 0.3 + 0.1 * np.cos(xx / 13.0)], axis=2)
    r = min(h, w) * 0.3
    d = np.sqrt((yy - h / 2) ** 2 + (xx - w / 2) ** 2)
    alpha = np.clip((r - d) / max(2.0, r / 20) + 0.5, 0, 1).astype(np.float32)
    fg = np.stack([0.9 - 0.2 * yy / h, 0.15 + 0.1 * xx / w, 0.1 + 0 * xx], axis=2)
    img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg + rng.normal(0, 0.01, (h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32), alpha


# ================================================================================================ the bench
class Bench:
    """Runs the stages, times the rows, collects the results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = args.device
        self.cuda = self.device.startswith("cuda")
        self.tiny = args.tiny
        self.rows: list[dict[str, Any]] = []
        self.t_start = time.perf_counter()
        if self.cuda:
            self.dtype = "float32" if args.dtype == "fp32" else "bfloat16"
        else:
            if args.dtype == "bf16":
                self.log("--dtype", f"{args.dtype} is not run on {self.device} "
                         "(layerkit refuses half precision on the CPU): float32")
            self.dtype = "float32"
        self.tmp_root = Path(args.tmp) if args.tmp else None

    # ------------------------------------------------------------------ plumbing
    def log(self, stage: str, msg: str) -> None:
        print(f"[gpu.py {time.perf_counter() - self.t_start:7.1f}s] {stage}: {msg}", flush=True)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def allocated(self) -> float | None:
        return torch.cuda.memory_allocated(self.device) / MiB if self.cuda else None

    @contextlib.contextmanager
    def tempdir(self, stage: str) -> Any:
        if self.tmp_root is not None:
            self.tmp_root.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix=f"layerkit_gpub_{stage}_", dir=self.tmp_root))
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)

    @property
    def build_device(self) -> str:
        return self.device if self.cuda else "cpu"

    @property
    def save_dtype(self) -> torch.dtype:
        """Weights are written in bf16 on CUDA runs (half the disk and load time); loaders cast them."""
        return torch.bfloat16 if self.cuda else torch.float32

    def timed_load(self, stage: str, what: str, fn: Callable[[], Any]) -> tuple[Any, float]:
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        dt = time.perf_counter() - t0
        self.log(stage, f"{what} in {dt:.1f} s")
        return out, dt

    def save_random(self, stage: str, what: str, build: Callable[[], tuple[Any, Any]], folder: Path) -> None:
        """Build a random ``(model, processor)`` pair, save both to ``folder``, free the build's memory."""
        def build_save() -> None:
            model, proc = build()
            model.to(self.save_dtype).save_pretrained(folder)
            proc.save_pretrained(folder)
        self.timed_load(stage, what, build_save)
        self.free()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if "error" in row:
            self.log(row["stage"], f"{row.get('setting', '')}: FAILED {row['error']}")
        elif "median_ms" in row:
            extra = f", {row['samples_per_s']:.2f} samples/s" if "samples_per_s" in row else ""
            peak = f", peak {row['peak_mib']:.0f} MiB" if row.get("peak_mib") is not None else ""
            self.log(row["stage"], f"{row['setting']}: {fmt_time(row['median_ms'])} (x{row['runs']}){extra}{peak}")

    def measure(self, fn: Callable[[], Any], min_runs: int, budget: float) -> dict[str, Any]:
        args = self.args

        def once() -> float:
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            return time.perf_counter() - t0

        resident = self.allocated()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        warm = [once()]
        n_warm = args.warmup if args.warmup is not None else (3 if warm[0] < 0.2 else 2 if warm[0] < 5.0 else 1)
        while len(warm) < max(1, n_warm):
            warm.append(once())
        runs = args.runs or max(min_runs, min(args.max_runs, math.ceil(budget / max(min(warm), 1e-4))))
        times = [once() for _ in range(runs)]
        out: dict[str, Any] = {
            "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3, "mean_ms": statistics.fmean(times) * 1e3,
            "first_ms": warm[0] * 1e3, "runs": runs, "warmup": len(warm), "resident_mib": resident}
        if self.cuda:
            out["peak_mib"] = torch.cuda.max_memory_allocated(self.device) / MiB
            out["peak_reserved_mib"] = torch.cuda.max_memory_reserved(self.device) / MiB
        else:
            out["peak_mib"] = None
        return out

    def row(self, stage: str, setting: str, fn: Callable[[], Any], *, path: str, dtype: Any, params: int | None,
            min_runs: int = 3, budget: float | None = None, items: int | None = None, **extra: Any) -> dict[str, Any]:
        """Time ``fn`` and add a row (or an error row: one failing setting does not stop the stage)."""
        row: dict[str, Any] = {"stage": stage, "setting": setting, "path": path, "dtype": dtype_name(dtype), "params": params}
        budget = self.args.row_budget if budget is None else budget
        if self.tiny:
            min_runs = min(min_runs, 2)
        self.log(stage, f"{setting} ...")
        try:
            row.update(self.measure(fn, min_runs, budget))
            if items:
                row["items_per_call"] = items
                row["samples_per_s"] = items / (row["median_ms"] / 1e3)
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["error"] = one_line(e)
            if self.args.verbose:
                traceback.print_exc()
            self.free()
        row.update({k: v for k, v in extra.items() if v is not None})
        self.add(row)
        return row

    def run(self, stages: list[str], table: dict[str, Callable[[Bench, str], None]],
            after_stage: Callable[[], None] | None = None) -> None:
        """Run ``table[name](self, name)`` for each stage name; a failing stage becomes one error row."""
        for name in stages:
            t0 = time.perf_counter()
            self.log(name, "start")
            try:
                table[name](self, name)
            except Exception as e:  # noqa: BLE001 - one failing stage is a row, the others still run
                if self.args.verbose:
                    traceback.print_exc()
                self.add({"stage": name, "setting": "(stage)", "error": one_line(e)})
            finally:
                self.free()
            self.log(name, f"done in {time.perf_counter() - t0:.1f} s")
            if after_stage is not None:
                after_stage()

    # ------------------------------------------------------------------ sizes
    def res(self, full: int, tiny: int) -> int:
        return tiny if self.tiny else full


def fmt_time(ms: float) -> str:
    return f"{ms / 1e3:.2f} s" if ms >= 1000 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"
