#!/usr/bin/env python
"""Complete-layer benchmark: hidden-part completion of weight-free multi-layer stacks, with and without it.

On a ``layerkit make-dataset`` folder (its GT layers are complete: hidden parts included) each
sample is peeled with one box per object (the visible part's box) and the order given (GT,
front-most first) — or inferred with ``--order auto`` — by the configured pipeline with its
completion stage switched off; the stack is then scored (``layerkit.evaluation.amodal``) as it
is ("none") and after the completion stage (what ``Pipeline.layers`` returns when the config
has one). Reported: visible-part PSNR, hidden-region RGB L1 / PSNR (straight RGB as stored, and
premultiplied), COCOA's occluded-region amodal IoU, alpha soft IoU, whole-layer RGB L1 and the
recomposition PSNR (mean and lowest image).

Usage:
    layerkit make-dataset --fg-dir FG --bg-dir BG --objects 3 --n 30 --seed 1 --max-side 384 -o multi3/
    python benchmarks/completion.py multi3/ -o bench_completion/ [--config classical+peel] [--set completion.fill=harmonic] \
        [--cache peels/] [--gt-shape] [--gt-visible]

``--gt-visible`` replaces the peel by the exact one (every GT layer cut to its visible part, its
colour kept there): what the completion stage does when the peel is right, the ceiling that
separates the stage from the segmentation in front of it.

Writes ``OUT/summary.json`` and ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layerkit.errors import one_line_errors  # noqa: E402
from layerkit.evaluation.amodal import KEYS, covers, evaluate_complete, mean_scores  # noqa: E402
from layerkit.evaluation.dataset import find_layer_samples  # noqa: E402
from layerkit.io.image import load_image  # noqa: E402
from layerkit.pipelines.decompose import Pipeline  # noqa: E402
from layerkit.pipelines.sequential import peel_layers  # noqa: E402
from layerkit.types import Layer, LayerStack  # noqa: E402


def _peel(pipe, img: np.ndarray, prompts: list, order: str, cache: Path | None, key: str) -> tuple[LayerStack, list]:
    """The peeled stack (completion off) and ``match`` (GT layer → stack index), from ``cache`` when there."""
    n = len(prompts)
    f = None if cache is None else cache / f"{key}_{order}.npz"
    if f is not None and f.exists():
        z = np.load(f)
        match = [None if m < 0 else int(m) for m in z["match"]]
        return LayerStack([Layer(x) for x in z["rgba"]]), match
    res = peel_layers(pipe, img, prompts, order=list(range(n))[::-1] if order == "given" else "auto")
    match = [0] + [next((r.layer for r in res.objects if r.index == k and r.status == "layer"), None) for k in range(n)]
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(f, rgba=np.stack([layer.rgba.astype(np.float32) for layer in res.stack]),
                            match=np.array([-1 if m is None else m for m in match]))
    return res.stack, match


def visible_stack(gt: list[np.ndarray], cover_threshold: float = 0.99) -> LayerStack:
    """The exact peel of a GT stack: each object layer kept where the layers above it cover less than ``cover_threshold``."""
    cov = covers([g[..., 3] for g in gt])
    out = [Layer(gt[0].astype(np.float32))]
    for g, c in zip(gt[1:], cov[1:]):
        a = (g[..., 3] * (c < cover_threshold)).astype(np.float32)
        rgb = np.where(a[..., None] > 0, g[..., :3], 0.0).astype(np.float32)
        out.append(Layer(np.concatenate([rgb, a[..., None]], axis=2)))
    return LayerStack(out)


def run(data: Path, config: str, overrides: list[str], order: str, limit: int | None, cache: Path | None = None,
        gt_shape: bool = False, gt_visible: bool = False) -> dict:
    """Peel every sample once (or read it from ``cache``), score the stack without and with the completion stage.

    The cache holds the peeled stacks only (keyed by sample and order; it does not depend on the
    ``completion`` overrides): delete it when the peeling stages or their config change.
    ``gt_shape`` adds the row "gt shape": the completion stage given each object's exact GT
    whole-object mask (inside the region the predicted upper layers cover) — the ceiling of the
    shape continuation, what the colour fill and the peeled masks leave. ``gt_visible`` scores
    the stage on the exact peel (:func:`visible_stack`) instead of the pipeline's.
    """
    pipe = Pipeline.from_config(config, overrides)
    completer = pipe.completion
    if completer is None:
        from layerkit.modules.completion.exemplar import ExemplarCompleter

        completer = ExemplarCompleter()
    pipe.completion = None
    names = ["none", "completion"] + (["gt shape"] if gt_shape else [])
    rows: dict[str, list] = {name: [] for name in names}
    recompose: dict[str, list] = {name: [] for name in names}
    seconds = {"peel": 0.0, "completion": 0.0}
    samples = find_layer_samples(data)[:limit]
    for s in samples:
        img = load_image(s.path / "composite.png")
        prompts = s.prompts("box")
        gt = [layer.rgba for layer in s.ground_truth()]
        t0 = time.perf_counter()
        if gt_visible:
            stack, match = visible_stack(gt), list(range(len(gt)))
        else:
            stack, match = _peel(pipe, img, prompts, order, cache, s.path.name)
        t1 = time.perf_counter()
        done = completer(stack)
        seconds["peel"] += t1 - t0
        seconds["completion"] += time.perf_counter() - t1
        results = [("none", stack), ("completion", done)]
        if gt_shape:
            amodal = [None] * len(stack)
            for g, k in enumerate(match):
                if g > 0 and k is not None:
                    amodal[k] = gt[g][..., 3] > 0.5
            results.append(("gt shape", completer(stack, amodal=amodal)))
        for name, st in results:
            ev = evaluate_complete([layer.rgba for layer in st], gt, img, match)
            rows[name] += ev["layers"]
            recompose[name].append(ev["recompose_psnr"])
    out = {"data": str(data), "samples": len(samples), "config": config, "overrides": overrides,
           "order": order, "peel": "exact (GT visible parts)" if gt_visible else "pipeline",
           "completion_stage": getattr(completer, "layerkit_config", {"backend": "exemplar"}), "seconds": seconds}
    for name in rows:
        out[name] = dict(mean_scores(rows[name]), recompose_mean=float(np.mean(recompose[name])),
                         recompose_min=float(np.min(recompose[name])), layers=len(rows[name]))
    return out


def markdown(summary: dict) -> str:
    keys = [*KEYS, "recompose_mean", "recompose_min"]
    lines = [f"{summary['samples']} samples of `{summary['data']}`, config `{summary['config']}` {summary['overrides']}, "
             f"order {summary['order']}, peel {summary.get('peel', 'pipeline')}; completion stage {summary['completion_stage']}", "",
             "| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name in ("none", "completion", "gt shape"):
        if name not in summary:
            continue
        lines.append(f"| {name} | " + " | ".join(f"{summary[name][k]:.4f}" for k in keys) + " |")
    a, b = summary["none"]["hidden_l1"], summary["completion"]["hidden_l1"]
    ceiling = f" (gt shape {100 * (summary['gt shape']['hidden_l1'] - a) / a:+.1f} %)" if "gt shape" in summary else ""
    lines += ["", f"hidden-region L1 change: {100 * (b - a) / a:+.1f} %{ceiling}; seconds: peel {summary['seconds']['peel']:.1f}, "
              f"completion {summary['seconds']['completion']:.1f} (shared CPU)"]
    return "\n".join(lines) + "\n"


@one_line_errors("completion.py")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", type=Path, help="a layerkit make-dataset folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--config", default="classical+peel", help="pipeline config (its completion section is the one measured)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], help="config overrides KEY=VALUE")
    p.add_argument("--order", choices=("given", "auto"), default="given", help="GT order (front first) or inferred")
    p.add_argument("--limit", type=int, default=None, help="first N samples only")
    p.add_argument("--cache", type=Path, default=None,
                   help="folder of peeled stacks (completion off), written on the first run and read after")
    p.add_argument("--gt-shape", action="store_true",
                   help="also score the completion given the exact GT object shapes (the ceiling of the shape continuation)")
    p.add_argument("--gt-visible", action="store_true",
                   help="complete the exact peel (GT layers cut to their visible parts) instead of the pipeline's")
    args = p.parse_args(argv)
    if args.gt_visible and (args.cache is not None or args.order != "given"):
        print("error: --cache and --order auto set the pipeline's peel, which --gt-visible replaces by the exact one; "
              "give one of them", file=sys.stderr)
        return 2
    summary = run(args.data, args.config, args.overrides, args.order, args.limit, args.cache, args.gt_shape,
                  args.gt_visible)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "summary.json").write_text(json.dumps(summary, indent=1))
    (args.output / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
