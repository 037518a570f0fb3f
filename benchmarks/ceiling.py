#!/usr/bin/env python
"""How much of the α error is segmentation: the default against two ceilings.

On a composite folder (``make_composites.py``) this evaluates, with layerkit's own evaluation:

* ``default`` — the config as it is (box prompts);
* ``init=<name>`` — the segmenter with one GrabCut initialisation only (each of ``segmenter.inits``);
* ``best init`` — per sample the best of those runs by α SAD: what a *perfect choice* among
  the initialisations would reach (an oracle: it reads the ground truth);
* ``GT mask`` — the ground-truth mask (α > 0.5) as a mask prompt: what trimap, matting and
  the layer stages reach with a *perfect segmentation*.

Usage:
    python ../shared/data/dev/make_composites.py ../shared/data/dev --out /tmp/dev30 --n 30 --seed 0
    python benchmarks/ceiling.py /tmp/dev30 -o /tmp/ceiling [--config classical] [--limit N]

Writes ``OUT/ceiling.json`` (per-sample SAD / soft-IoU of every row) and ``OUT/ceiling.md``.
Takes about (number of initialisations + 2) × the time of one ``layerkit eval`` run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layerkit import Pipeline  # noqa: E402
from layerkit.errors import LayerkitError  # noqa: E402
from layerkit.evaluation.composites import evaluate_composites, find_samples  # noqa: E402
from layerkit.io.atomic import check_output  # noqa: E402

KEYS = ("sad", "iou")


def per_sample(pipe: Pipeline, samples: list, prompt: str) -> dict[str, dict[str, float]]:
    """``{sample id: {"sad": …, "iou": …}}`` (failed samples are left out)."""
    records = evaluate_composites(pipe, samples, prompt)
    return {r["id"]: {k: float(r[k]) for k in KEYS} for r in records if "error" not in r}


def best_of(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per sample the run with the lowest SAD (its SAD and IoU)."""
    ids = set.intersection(*(set(r) for r in runs))
    return {i: min((r[i] for r in runs), key=lambda m: m["sad"]) for i in sorted(ids)}


def summary(rows: dict[str, dict[str, dict[str, float]]]) -> list[dict]:
    """One line per row: mean SAD / IoU over the samples every row scored."""
    ids = sorted(set.intersection(*(set(r) for r in rows.values())))
    return [{"row": name, "n": len(ids), **{k: float(np.mean([r[i][k] for i in ids])) for k in KEYS}}
            for name, r in rows.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="composite folder written by make_composites.py")
    ap.add_argument("-o", "--output", required=True, help="output folder (ceiling.json, ceiling.md)")
    ap.add_argument("--config", default="classical", help="config spec (default: classical)")
    ap.add_argument("--limit", type=int, default=None, help="first N samples only")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = ap.parse_args(argv)
    try:
        check_output(args.output, args.overwrite)
        samples = find_samples(args.data)[: args.limit]
        pipe = Pipeline.from_config(args.config)
        inits = list(getattr(pipe.segmenter, "inits", ()))
        if len(inits) < 2:
            raise LayerkitError(f"config {args.config!r}: the segmenter has no list of initialisations (segmenter.inits) to compare")
        rows = {"default": per_sample(pipe, samples, "box")}
        for init in inits:
            print(f"init={init}", file=sys.stderr)
            rows[f"init={init}"] = per_sample(Pipeline.from_config(args.config, {"segmenter.inits": [init]}), samples, "box")
        rows["best init (oracle)"] = best_of([rows[f"init={i}"] for i in inits])
        rows["GT mask (oracle)"] = per_sample(Pipeline.from_config(args.config, {"segmenter.refine_mask": False}), samples, "gt-mask")
    except LayerkitError as e:
        print(f"ceiling.py: {e}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    lines = summary(rows)
    (out / "ceiling.json").write_text(json.dumps({"data": args.data, "config": args.config, "summary": lines, "per_sample": rows}, indent=1))
    md = [f"# α ceilings: {args.config} on {args.data}", "", "| row | samples | α SAD/1e3 | α soft-IoU |", "|---|---:|---:|---:|"]
    md += [f"| {r['row']} | {r['n']} | {r['sad']:.3f} | {r['iou']:.4f} |" for r in lines]
    (out / "ceiling.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
