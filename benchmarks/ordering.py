#!/usr/bin/env python
"""Occlusion-ordering benchmark: the orderers of ``modules/orderer/`` compared on the same first pass.

On a ``layerkit make-dataset`` folder, each object is segmented once on the input with the box
of its visible part (the first pass of ``order="auto"``); the alphas are cached in ``OUT/alphas``
so orderers can be compared without re-running the pipeline. The objects are given in a seeded
random order. Reported: the share of GT object pairs whose GT alphas overlap that are put in
the right depth order (pairwise) and the share of stacks with every such pair right (whole).

Orderers: ``evidence`` (``modules/orderer/evidence.py``), ``occlusion`` (``modules/orderer/occlusion.py``),
``cues`` (``modules/orderer/cues.py``, the default ``orderer.backend``), ``cues_image`` (the same
with ``image_cues=True``: the image T-junction and completion-informed cues on, ``IMAGE_WEIGHTS``).

``--gt-visible`` replaces the first pass by the exact visible parts (the GT alphas times what the
GT layers above transmit), cached in ``OUT/alphas_gt``: the ceiling of the cues on perfect masks
(``benchmarks/ordering_fit.py DATA=OUT/alphas_gt`` cross-validates the pair model on them).

Usage:
    python benchmarks/ordering.py multi3/ -o bench_order/ [--config classical+peel] [--limit N] [--gt-visible]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layerkit.errors import one_line_errors  # noqa: E402
from layerkit.evaluation.amodal import covers  # noqa: E402
from layerkit.evaluation.dataset import find_layer_samples  # noqa: E402
from layerkit.io.image import load_image  # noqa: E402
from layerkit.modules.orderer import cues, evidence, occlusion  # noqa: E402

#: default seed of the given (shuffled) object order
SEED = 7

Orderer = Callable[[np.ndarray, list, list], list]  # (image, alphas, prompts) -> order, front first
ORDERERS: dict[str, Orderer] = {
    "evidence": evidence.OcclusionOrderer(),
    "occlusion": lambda img, al, pr: occlusion.occlusion_order(al, [evidence.object_box(a, p) for a, p in zip(al, pr)], img),
    "cues": cues.CueOrderer(),
    "cues_image": cues.CueOrderer(image_cues=True),
}


def first_pass(data: Path, cache: Path, config: str, limit: int | None) -> None:
    """Cache each sample's per-object alphas (``cache/ID.npz``), computed on the input image."""
    from layerkit.pipelines.decompose import Pipeline

    cache.mkdir(parents=True, exist_ok=True)
    pipe = None
    for s in find_layer_samples(data)[:limit]:
        f = cache / f"{s.id}.npz"
        if f.exists():
            continue
        pipe = pipe or Pipeline.from_config(config)
        img = load_image(s.path / "composite.png")
        np.savez_compressed(f, alphas=np.stack([pipe(img, p).alpha for p in s.prompts("box")]).astype(np.float16))


def gt_visible(data: Path, cache: Path, limit: int | None) -> None:
    """Cache each sample's exact visible alphas (``cache/ID.npz``, bottom → top like the first pass)."""
    cache.mkdir(parents=True, exist_ok=True)
    for s in find_layer_samples(data)[:limit]:
        f = cache / f"{s.id}.npz"
        if f.exists():
            continue
        a = [layer.alpha for layer in s.ground_truth().layers[1:]]
        vis = [ak * (1.0 - ck) for ak, ck in zip(a, covers(a))]  # what the layers above let through
        np.savez_compressed(f, alphas=np.stack(vis).astype(np.float16))


def score(data: Path, cache: Path, order_fn: Orderer, seed: int, limit: int | None) -> dict[str, float]:
    """Pairwise and whole-stack accuracy of ``order_fn`` on the cached alphas."""
    ok = total = whole = n = 0
    for s in find_layer_samples(data)[:limit]:
        al = np.load(cache / f"{s.id}.npz")["alphas"].astype(np.float32)
        gt, img, prompts = s.ground_truth(), load_image(s.path / "composite.png"), s.prompts("box")
        k = len(al)
        perm = np.random.default_rng([seed, int(s.id) if s.id.isdigit() else 0]).permutation(k)
        order = order_fn(img, [al[i] for i in perm], [prompts[i] for i in perm])
        rank = {int(perm[i]) + 1: r for r, i in enumerate(order)}  # GT layer → predicted rank (0 = front)
        good = True
        for a in range(1, k + 1):
            for b in range(a + 1, k + 1):  # b is above a in the GT
                if float(np.minimum(gt[a].alpha, gt[b].alpha).sum()) > 0:
                    total += 1
                    ok += rank[b] < rank[a]
                    good &= rank[b] < rank[a]
        whole += good
        n += 1
    return {"pairwise": ok / total if total else float("nan"), "whole": whole / n if n else float("nan"),
            "pairs": total, "stacks": n}


@one_line_errors("ordering.py")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", type=Path, help="a layerkit make-dataset folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (alpha cache, summary.json)")
    p.add_argument("--config", default=None, help="pipeline of the first pass (default classical+peel)")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the given (shuffled) object order")
    p.add_argument("--limit", type=int, default=None, help="first N samples only")
    p.add_argument("--gt-visible", action="store_true", help="order the exact visible parts instead of the first pass")
    args = p.parse_args(argv)
    if args.gt_visible and args.config is not None:
        print("error: --config sets the first pass, which --gt-visible replaces by the exact visible parts; "
              "give one of them", file=sys.stderr)
        return 2
    find_layer_samples(args.data)  # a missing or malformed folder: one line, nothing written
    cache = args.output / ("alphas_gt" if args.gt_visible else "alphas")
    if args.gt_visible:
        gt_visible(args.data, cache, args.limit)
    else:
        first_pass(args.data, cache, args.config or "classical+peel", args.limit)
    summary = {name: score(args.data, cache, fn, args.seed, args.limit) for name, fn in ORDERERS.items()}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / ("summary_gt.json" if args.gt_visible else "summary.json")).write_text(json.dumps(summary, indent=1))
    for name, r in summary.items():
        print(f"{name}: pairwise {r['pairwise']:.3f} ({r['pairs']} pairs), whole {r['whole']:.3f} ({r['stacks']} stacks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
