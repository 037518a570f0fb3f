"""Figures for docs and reports: loss curves from a run's CSV log, and FBDD sample grids.

Usage::

    python -m layerkit.training.plots curves runs/fbdd_tiny/logs/version_0/metrics.csv \\
        train/loss val/loss -o docs/img/fbdd_tiny_loss.png --smooth 20
    python -m layerkit.training.plots fbdd-samples runs/fbdd_tiny/export/fbdd \\
        --fg a.png b.png --bg x.jpg y.jpg -o docs/img/fbdd_tiny_samples.png
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def read_metrics(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{metric: (steps, values)}`` from a Lightning ``CSVLogger`` file (empty cells skipped)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            step = float(row.get("step") or 0)
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                steps, values = out.setdefault(key, ([], []))
                steps.append(step)
                values.append(float(value))
    return {k: (np.asarray(s), np.asarray(v)) for k, (s, v) in out.items()}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    if window <= 1 or len(values) < 2:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_curves(path: str | os.PathLike, keys: Sequence[str], out: str | os.PathLike, window: int = 1,
                title: str = "", log_y: bool = True) -> Path:
    """Plot metrics ``keys`` against the step and save a PNG (``window`` smooths each curve).

    Raises:
        KeyError: a key is not in the log (the message lists the logged ones).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_metrics(path)
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
    for key in keys:
        if key not in data:
            raise KeyError(f"{key!r} is not in {str(path)!r}; logged: {', '.join(sorted(data))}")
        steps, values = data[key]
        ax.plot(steps, smooth(values, window if key.startswith("train") else 1), label=key,
                marker="o" if len(values) < 30 else None, ms=3)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def fbdd_samples(model: str, fg_files: Sequence[str], bg_files: Sequence[str], out: str | os.PathLike, size: int = 64,
                 steps: int = 20, scheduler: str = "ddim", seed: int = 0) -> Path:
    """Sample grid of an FBDD model on fresh composites (rows: one composite each).

    Columns: composite, alpha, F̂ (over black), F ground truth, B̂, B ground truth, F̂/B̂ recomposed.
    Composite ``i`` pairs ``fg_files[i % n]`` with ``bg_files[i % m]``; ``max(n, m)`` rows.
    """
    import torch
    from PIL import Image

    from layerkit.modules.decomposer.fbdd import FBDDDecomposer
    from layerkit.training.callbacks import image_grid
    from layerkit.training.synth import SynthParams, make_sample

    dec = FBDDDecomposer(model=model, scheduler=scheduler, steps=steps, resolution=0)
    dec.manual_seed(seed)
    params = SynthParams(size=size, fg_scale=(0.3, 0.5), band_prob=0.3, hat="none", jitter=0.0)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("composite", "alpha", "fg", "fg_gt", "bg", "bg_gt", "recomposed")}
    for i in range(max(len(fg_files), len(bg_files))):
        with Image.open(fg_files[i % len(fg_files)]) as im:
            fg = np.asarray(im.convert("RGBA"), np.float32) / 255
        with Image.open(bg_files[i % len(bg_files)]) as im:
            bg = np.asarray(im.convert("RGB"), np.float32) / 255
        s = make_sample(fg, bg, np.random.default_rng([seed, i]), params)
        f, b = dec(s["image"], s["alpha"])
        a = s["alpha"][..., None]
        for k, v in (("composite", s["image"]), ("alpha", np.repeat(a, 3, 2)), ("fg", f * a), ("fg_gt", s["fg"] * a),
                     ("bg", b), ("bg_gt", s["bg"]), ("recomposed", a * f + (1 - a) * b)):
            cols[k].append(v)
    grid = image_grid({k: torch.from_numpy(np.stack(v).transpose(0, 3, 1, 2)) for k, v in cols.items()}, len(cols["alpha"]))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    return Path(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("curves", help="loss curves from metrics.csv")
    c.add_argument("csv", help="metrics.csv of a run")
    c.add_argument("keys", nargs="+", help="metrics to plot, e.g. train/loss val/loss")
    c.add_argument("-o", "--output", required=True, help="PNG to write")
    c.add_argument("--smooth", type=int, default=1, help="moving-average window of train/* curves")
    c.add_argument("--title", default="")
    c.add_argument("--linear", action="store_true", help="linear instead of log y axis")
    f = sub.add_parser("fbdd-samples", help="sample grid of an FBDD model folder")
    f.add_argument("model", help="FBDD model folder (RUN/export/fbdd)")
    f.add_argument("--fg", nargs="+", required=True, help="RGBA foreground files")
    f.add_argument("--bg", nargs="+", required=True, help="background photos")
    f.add_argument("-o", "--output", required=True, help="PNG to write")
    f.add_argument("--size", type=int, default=64)
    f.add_argument("--steps", type=int, default=20)
    f.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.what == "curves":
        print(plot_curves(args.csv, args.keys, args.output, args.smooth, args.title, not args.linear))
    else:
        print(fbdd_samples(args.model, args.fg, args.bg, args.output, args.size, args.steps, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
