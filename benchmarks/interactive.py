#!/usr/bin/env python
"""Interactive segmentation, measured: NoC@85/90 and IoU after 1/3/5 clicks, and per-click latency.

The simulated user of :mod:`layerkit.app.noc` clicks at the interior of the largest error region
(positive on missed object, negative on wrong background), up to ``--max-clicks`` clicks, against

* ``layerkit`` — :class:`layerkit.app.interactive.ClickRefiner`: the first click through the
  config's segmenter, every later click refining the current mask (what ``layerkit app`` does);
* ``grabcut`` — the peer: plain OpenCV GrabCut from the same protocol's clicks, run afresh per click.

IoU is that of the segmentation mask against GT α > 0.5. Sets: a composite folder
(``make_composites.py`` output: ``NNNN/composite.png`` + ``gt_alpha.png``) and/or a real-photo
folder (``*_input.png`` + ``*_alpha.png``, e.g. ``../shared/data/dev/real_alpha``).

``--latency`` also times the app's own per-click path on a photo resized to 640 px (the
:class:`layerkit.app.session.Session`: mask + matting + layers per click), first click and
refinement clicks separately, after the warm-up ``layerkit app`` does at start: wall time and the
process's CPU time (summed over threads; on an idle machine the wall time is at most about that,
so it is the figure to read when the machine is shared — the 1-min load average is recorded).

Usage:
    python benchmarks/interactive.py --composites /tmp/dev30 --real ../shared/data/dev/real_alpha -o /tmp/noc
    python benchmarks/interactive.py --latency layerkit/assets/astronaut.png -o /tmp/noc_latency

Writes ``OUT/interactive.json`` (per-sample traces, means) and ``OUT/interactive.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layerkit import Pipeline  # noqa: E402
from layerkit.app.interactive import Click, ClickRefiner, GrabCutPeer, click_segmenter  # noqa: E402
from layerkit.evaluation.interactive import PEER, ClickSample, find_click_samples, run_protocol, table_markdown  # noqa: E402
from layerkit.io.image import load_image  # noqa: E402


def find_pairs(composites: str | None, real: str | None, limit: int | None,
               offset: int = 0) -> dict[str, list[ClickSample]]:
    """``set name → samples`` (see :func:`layerkit.evaluation.interactive.find_click_samples`)."""
    sets: dict[str, list[ClickSample]] = {}
    for name, folder in (("composites", composites), ("real_alpha", real)):
        if folder:
            sets[name] = find_click_samples(folder, limit, offset)[1]
    return sets


def run_noc(sets: dict[str, list[ClickSample]], methods: dict[str, Any], max_clicks: int,
            quiet: bool) -> dict[str, Any]:
    return {name: run_protocol(methods, rows, max_clicks, quiet) for name, rows in sets.items()}


def run_latency(path: str, pipe: Pipeline, side: int, clicks: int) -> dict[str, Any]:
    """Time the app's click path on ``path`` resized to ``side`` px: first click and refinements."""
    import os

    import cv2

    from layerkit import Prompt
    from layerkit.app.session import Session

    t0 = time.perf_counter()
    pipe(np.full((64, 64, 3), 0.5, np.float32), Prompt(boxes=[[16, 16, 48, 48]]))  # what `layerkit app` does at start
    warm = time.perf_counter() - t0
    load_before = os.getloadavg()[0]
    img = load_image(path)
    k = side / max(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    session = Session.from_array(img)
    # clicks of a simulated user on the pipeline's own first result: centre, then around it
    cx, cy = w / 2, h / 2
    plan = [Click(cx, cy, True)] + [Click(cx + dx * w / 8, cy + dy * h / 8, pos) for dx, dy, pos in
                                    ((1, 0, True), (-1, 0, True), (0, 1, False), (0, -1, True), (1, 1, False))][:clicks - 1]
    times, cpu = [], []
    for c in plan:
        t0, c0 = time.perf_counter(), time.process_time()
        session.click(pipe, c.x, c.y, c.positive)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"image": str(path), "size": [w, h], "warm_up_s": round(warm, 3),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], "cpus": os.cpu_count(),
            "first_click_s": round(times[0], 3), "first_click_cpu_s": round(cpu[0], 3),
            "refine_click_cpu_s": [round(t, 3) for t in cpu[1:]],
            "refine_click_s": [round(t, 3) for t in times[1:]],
            "refine_click_mean_s": round(float(np.mean(times[1:])), 3) if len(times) > 1 else None}


def write_report(out: Path, results: dict[str, Any], latency: dict[str, Any] | None, args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {"args": {k: v for k, v in vars(args).items()}, "noc": results, "latency": latency}
    (out / "interactive.json").write_text(json.dumps(doc, indent=1))
    lines = ["# Interactive segmentation", ""]
    for set_name, r in results.items():
        lines += [table_markdown(r, set_name)]
    if latency:
        lines += ["## App latency per click", "", f"`{latency['image']}` at {latency['size'][0]}×{latency['size'][1]}: "
                  f"first click {latency['first_click_s']} s, refinement clicks {latency['refine_click_s']} s "
                  f"(mean {latency['refine_click_mean_s']} s); CPU time (all threads) first {latency['first_click_cpu_s']} s, "
                  f"refinements {latency['refine_click_cpu_s']} s; warm-up before them {latency['warm_up_s']} s; "
                  f"1-min load average {latency['load_average_1min']} on {latency['cpus']} CPUs", ""]
    (out / "interactive.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--composites", default=None, help="composite folder (make_composites.py output)")
    ap.add_argument("--real", default=None, help="folder of *_input.png + *_alpha.png photos")
    ap.add_argument("--latency", default=None, metavar="IMAGE", help="time the app's click path on IMAGE resized to --side")
    ap.add_argument("--side", type=int, default=640, help="long side of the latency image")
    ap.add_argument("--latency-clicks", type=int, default=6, help="clicks in the latency run (1 first + refinements)")
    ap.add_argument("--config", default="classical", help="pipeline config spec")
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--limit", type=int, default=None, help="first N samples of each set (after --offset)")
    ap.add_argument("--offset", type=int, default=0, help="skip the first N samples of each set")
    ap.add_argument("--methods", default="layerkit,grabcut", help="comma-separated: layerkit, grabcut (the peer)")
    ap.add_argument("-o", "--output", required=True, help="output folder")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    pipe = Pipeline.from_config(args.config)
    all_methods = {"layerkit": ClickRefiner(click_segmenter(pipe.segmenter)), PEER: GrabCutPeer()}
    methods = {PEER if m == "grabcut" else m: all_methods[PEER if m == "grabcut" else m] for m in args.methods.split(",")}
    results = run_noc(find_pairs(args.composites, args.real, args.limit, args.offset), methods, args.max_clicks, args.quiet) \
        if (args.composites or args.real) else {}
    latency = run_latency(args.latency, pipe, args.side, args.latency_clicks) if args.latency else None
    write_report(Path(args.output), results, latency, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
