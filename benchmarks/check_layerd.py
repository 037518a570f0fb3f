#!/usr/bin/env python
"""Re-score ``eval-layers`` stacks with LayerD's own evaluation code and compare, sample by sample.

LayerD's package imports its models (torch, …) on import, so only its evaluation modules
(``src/layerd/evaluation/*.py``) and ``group_top_layers_indices`` (from
``src/layerd/data/crello.py``) are loaded, under a stub ``layerd`` package. Needs a LayerD
checkout (github.com/CyberAgentAILab/LayerD) and scikit-image (imported by its metrics module).

Usage:
    layerkit eval-layers DATA --pred-dir STACKS -o EVAL/            # --protocol layerd (default)
    python benchmarks/check_layerd.py DATA STACKS EVAL/ --layerd-src LayerD/src [--limit N]

Prints the largest per-sample, per-level difference of cost, RGB L1 and soft IoU, and of the
aggregated means (all samples only); exits 1 if any exceeds ``--tol``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image

from layerkit.io.image import to_uint8
from layerkit.types import LayerStack

KEYS = ("cost", "rgb_l1", "alpha_iou")


def load_layerd_evaluation(src: Path) -> types.ModuleType:
    """``layerd.evaluation`` from a LayerD ``src`` folder, without importing LayerD's models."""
    for name in ("layerd", "layerd.data"):
        stub = types.ModuleType(name)
        stub.__path__ = []
        sys.modules[name] = stub
    crello = types.ModuleType("layerd.data.crello")
    tree = ast.parse((src / "layerd" / "data" / "crello.py").read_text())
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "group_top_layers_indices"]
    crello.np = np
    exec(compile(ast.Module(body=body, type_ignores=[]), "crello.py", "exec"), crello.__dict__)
    sys.modules["layerd.data.crello"] = crello
    folder = src / "layerd" / "evaluation"
    spec = importlib.util.spec_from_file_location("layerd.evaluation", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["layerd.evaluation"] = module
    spec.loader.exec_module(module)
    return module


def pil_layers(path: Path) -> list[Image.Image]:
    return [Image.fromarray(to_uint8(layer.rgba), "RGBA") for layer in LayerStack.load(path) if layer.visible]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="layerkit make-dataset folder")
    p.add_argument("stacks", type=Path, help="the --pred-dir that eval-layers scored")
    p.add_argument("eval", type=Path, help="the eval-layers output folder (results.json, --protocol layerd)")
    p.add_argument("--layerd-src", type=Path, required=True, help="src/ of a LayerD checkout")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--tol", type=float, default=1e-9)
    args = p.parse_args()
    evaluation = load_layerd_evaluation(args.layerd_src)
    res = json.loads((args.eval / "results.json").read_text())
    if res.get("protocol") != "layerd":
        sys.exit(f"{args.eval} was not scored with --protocol layerd")
    evaluator = evaluation.LayersEditDist(max_edits=res["max merges"])
    samples = res["samples"][:args.limit]
    refs, worst = [], 0.0
    for rec in samples:
        pred, gt = pil_layers(args.stacks / rec["id"]), pil_layers(args.data / rec["id"] / "layers")
        if len(pred) < 2 or len(gt) < 2:  # as LayerD's tools/evaluate.py
            worst = max(worst, 0.0 if "skipped" in rec else float("inf"))
            continue
        ref = evaluator(pred, gt)
        if len(ref) != len(rec["levels"]):
            worst = float("inf")
            print(f"{rec['id']}: LayerD reaches level {len(ref) - 1}, eval-layers {len(rec['levels']) - 1}")
            continue
        worst = max([worst] + [abs(r[k] - o[k]) for r, o in zip(ref, rec["levels"]) for k in KEYS])
        refs.append(ref)
    line = f"{len(refs)} scored, {len(samples) - len(refs)} skipped; largest per-sample difference {worst:.2e}"
    if args.limit is None and refs:
        agg = evaluation.LayersEditDist.aggregate(refs)
        d = max(abs(a["avg_" + k] - b[k]) for a, b in zip(agg, res["levels"]) for k in KEYS)
        same = len(agg) == len(res["levels"]) and [a["count"] for a in agg] == [b["reached"] for b in res["levels"]]
        worst = max(worst, d if same else float("inf"))
        line += f"; aggregated means {d:.2e}, levels and counts {'equal' if same else 'DIFFER'}"
    print(line)
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
