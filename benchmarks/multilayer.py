#!/usr/bin/env python
"""Measure multi-layer decomposition on a ``layerkit make-dataset`` folder, prompted and automatic.

For each mode the stacks are made by ``scripts/decompose_layers.py`` (prompted: one box per GT
object, given in a seeded random order so the depth order must be inferred; automatic: no
prompt), scored by ``layerkit eval-layers --pred-dir`` under both protocols (``layerd``: LayerD's
own evaluation, comparable with published figures; ``layerkit``: exact re-alignment per candidate
merge; DTW RGB L1 and alpha soft IoU per merge level), and summed up with the recomposition PSNR
and seconds per image from the script's reports.

Usage:
    layerkit make-dataset --fg-dir FG --bg-dir BG --objects 3 --n 30 --seed 0 -o multi3/
    python benchmarks/multilayer.py multi3/ -o bench_multi3/ [--modes prompted auto] [--config classical+peel]

Writes ``OUT/<mode>/stacks``, ``OUT/<mode>/eval`` (layerd), ``OUT/<mode>/eval_layerkit`` and
``OUT/summary.md`` / ``summary.json`` (one row per mode and protocol; ``*_m5`` is merge level 5 or
the deepest level reached, ``max_level``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_prompts(data: Path, path: Path, seed: int) -> None:
    """``prompts.jsonl`` with each sample's GT visible boxes in a seeded random order."""
    lines = []
    for d in sorted(p for p in data.iterdir() if (p / "prompts.json").is_file()):
        objs = json.loads((d / "prompts.json").read_text())["objects"]
        order = np.random.default_rng([seed, int(d.name) if d.name.isdigit() else 0]).permutation(len(objs))
        objects = [{"box": objs[i]["box_xyxy"], "name": objs[i]["label"]} for i in order]
        lines.append(json.dumps({"image": d.name, "objects": objects}))
    path.write_text("\n".join(lines) + "\n")


def order_accuracy(data: Path, stacks: Path, seed: int) -> float | None:
    """Share of overlapping GT object pairs (both found) that the prompted run put in the right depth order."""
    from layerkit.types import LayerStack

    ok = total = 0
    for rep_path in sorted((stacks / "reports").glob("*.json")):
        rep = json.loads(rep_path.read_text())
        d = data / rep["id"]
        n = len(json.loads((d / "prompts.json").read_text())["objects"])
        perm = np.random.default_rng([seed, int(d.name) if d.name.isdigit() else 0]).permutation(n)  # as write_prompts
        gt = LayerStack.load(d / "layers")
        rank = {int(perm[i]) + 1: r for r, i in enumerate(rep["order_front_to_back"])}  # GT layer → predicted rank (0 = front)
        for a in range(1, n + 1):
            for b in range(a + 1, n + 1):  # b is above a in the GT
                if a in rank and b in rank and float(np.minimum(gt[a].alpha, gt[b].alpha).sum()) > 0:
                    total += 1
                    ok += rank[b] < rank[a]
    return ok / total if total else None


PROTOCOLS = {"layerd": "eval", "layerkit": "eval_layerkit"}  # protocol → output folder under OUT/<mode>


def score(data: Path, mdir: Path, protocol: str, limit: int | None) -> dict:
    """``layerkit eval-layers --pred-dir`` under ``protocol``; the per-level means at levels 0 and 5 (or the deepest)."""
    ev = [sys.executable, "-m", "layerkit", "eval-layers", str(data), "--pred-dir", str(mdir / "stacks"),
          "-o", str(mdir / PROTOCOLS[protocol]), "--overwrite", "--max-merges", "5", "--protocol", protocol, "--quiet"]
    if limit:
        ev += ["--limit", str(limit)]
    subprocess.run(ev, check=False)
    res = json.loads((mdir / PROTOCOLS[protocol] / "results.json").read_text())
    lv = {lvl["merges"]: lvl for lvl in res["levels"]}
    top = lv[min(5, max(lv))]
    return {"protocol": protocol, "n": res["n"], "n_scored": res["n_ok"] - res.get("n_skipped", 0),
            "max_level": max(lv), "cost_m0": lv[0]["cost"], "rgb_l1_m0": lv[0]["rgb_l1"], "iou_m0": lv[0]["alpha_iou"],
            "cost_m5": top["cost"], "rgb_l1_m5": top["rgb_l1"], "iou_m5": top["alpha_iou"]}


def run_mode(data: Path, out: Path, mode: str, args: argparse.Namespace) -> list[dict]:
    mdir = out / mode
    mdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / "scripts" / "decompose_layers.py"), str(data), "--pattern", "*/composite.png",
           "--id-from", "parent", "-o", str(mdir / "stacks"), "--config", args.config]
    if mode == "prompted":
        write_prompts(data, mdir / "prompts.jsonl", args.seed)
        cmd += ["--prompts", str(mdir / "prompts.jsonl")]
    else:
        cmd += ["--auto"]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if not args.score_only:
        subprocess.run(cmd, check=False)
    reports = [json.loads(p.read_text()) for p in sorted((mdir / "stacks" / "reports").glob("*.json"))]
    psnrs = [r["recompose_psnr_db"] for r in reports if r["recompose_psnr_db"] is not None]
    common = {"psnr_mean": float(np.mean(psnrs)) if psnrs else None, "psnr_min": float(np.min(psnrs)) if psnrs else None,
              "seconds_per_image": float(np.mean([r["seconds"] for r in reports])) if reports else None,
              "layers_per_image": float(np.mean([len(r["layers"]) for r in reports])) if reports else None,
              "order_accuracy": order_accuracy(data, mdir / "stacks", args.seed) if mode == "prompted" else None,
              "empty_objects": sum(o["status"] == "empty" for r in reports for o in r["objects"]),
              "duplicate_objects": sum(o["status"] == "duplicate" for r in reports for o in r["objects"])}
    return [{"mode": mode, **score(data, mdir, protocol, args.limit), **common} for protocol in args.protocols]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="layerkit make-dataset folder")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--modes", nargs="+", default=["prompted", "auto"], choices=("prompted", "auto"))
    p.add_argument("--config", default="classical+peel", help="pipeline config spec (default: that of layerkit layers)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompt order")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS),
                   help="eval-layers scoring protocols (default: both)")
    p.add_argument("--score-only", action="store_true", help="score the stacks already in OUT/<mode>/stacks again")
    args = p.parse_args()
    data, out = Path(args.data), Path(args.output)
    if not data.is_dir():
        print(f"multilayer.py: data folder '{data}' does not exist or is not a folder; make one with layerkit make-dataset",
              file=sys.stderr)
        return 2
    rows = [row for m in args.modes for row in run_mode(data, out, m, args)]
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    cols = list(rows[0])
    md = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    md += "".join("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |\n" for r in rows)
    (out / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
