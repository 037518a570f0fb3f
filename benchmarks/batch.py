#!/usr/bin/env python
"""Throughput of ``layerkit batch``: images/s with 1 and 2 local workers, Ray's overhead over the
local pool, peak memory per worker, per-image cost.

    python benchmarks/batch.py --n 8 --side 256 -o /tmp/batch_bench          # local 1, local 2, ray 2
    python benchmarks/batch.py --n 40 --side 512 --engines local:1,local:2,local:4,ray:4 -o OUT

Inputs: ``--n`` copies of the shipped astronaut photo, resized to ``--side`` px, with the head box
as the prompt (every image the same work). Each engine runs on the same jobs into a fresh folder.
*Steady* rates leave out start-up: they count the records that arrive after every worker has
delivered its first one (all warm: pipeline built, numba caches loaded, one image run), over the
time from then to the last record; *worker s/img* is the mean time the workers measured per image,
each worker's first image left out, and *worker CPU s/img* the CPU time it spent on it (what a
quiet core would need; the basis of the cluster plan in docs/batch.md); *system CPU s/img* is the
CPU time of the driver, the workers and the engine's daemons (a local Ray's GCS and raylet) over
the steady window per steady image — the whole cost of an image, engine overhead included, and
far less distorted by other load than wall-clock rates; *wall* rates include start-up (spawn, Ray
start, first image). Ray's overhead is given on both: steady wall rate and system CPU per image,
against the local pool with the same workers. Peak memory is the
largest ``ru_maxrss`` a worker reported. Writes ``batch_bench.json`` and ``batch_bench.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEAD_BOX = (150, 15, 300, 215)  # the head of layerkit/assets/astronaut.png (512 x 512), as in `make demo`


def make_inputs(folder: Path, n: int, side: int) -> list[Any]:
    """``n`` resized copies of the astronaut with the scaled head box; returns the jobs."""
    from PIL import Image

    from layerkit.batch.jobs import Job

    folder.mkdir(parents=True, exist_ok=True)
    src = Image.open(ROOT / "layerkit" / "assets" / "astronaut.png").convert("RGB")
    s = side / max(src.size)
    im = src.resize((round(src.size[0] * s), round(src.size[1] * s)), Image.LANCZOS)
    box = [round(v * s) for v in HEAD_BOX]
    jobs = []
    for i in range(n):
        p = folder / f"img{i:04d}.png"
        im.save(p)
        jobs.append(Job(p.stem, str(p), [{"box": box, "name": "head"}]))
    return jobs


def tree_cpu_s() -> float:
    """CPU seconds (user + system) of this process and every live descendant: the driver, the
    workers and, for a local Ray, its daemons (GCS, raylet, actors)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def run_engine(kind: str, workers: int, jobs: list[Any], out: Path, config: str, threads: int) -> dict[str, Any]:
    """One engine over ``jobs``; arrival time of every record, steady and wall rates, memory."""
    from layerkit.batch.runner import _thread_env, make_engine
    from layerkit.batch.worker import WorkerSpec

    out.mkdir(parents=True)
    spec = WorkerSpec(out=str(out), config=config, threads=threads)
    t0 = time.perf_counter()
    eng = make_engine(spec, kind, workers, num_cpus=workers * threads if kind == "ray" else None)
    arrivals, recs, seen = [], [], set()
    cpu_warm = cpu_end = None
    with _thread_env(threads):
        try:
            for rec in eng.run(jobs):
                arrivals.append(time.perf_counter() - t0)
                recs.append(rec)
                seen.add(rec["worker"]["pid"])
                if cpu_warm is None and len(seen) == workers:
                    cpu_warm = tree_cpu_s()
            cpu_end = tree_cpu_s()
        finally:
            eng.close()
    wall = time.perf_counter() - t0
    ok = [r for r in recs if r["status"] == "ok"]
    first: dict[int, float] = {}  # pid -> arrival of its first record (that image paid the warm-up)
    peak: dict[int, float] = {}
    for r, t in zip(recs, arrivals):
        pid = r["worker"]["pid"]
        first.setdefault(pid, t)
        peak[pid] = max(peak.get(pid, 0.0), r["worker"]["peak_rss_mb"])
    t_warm = max(first.values())  # every worker has built its pipeline and run one image
    after = [t for t in arrivals if t > t_warm]
    steady = len(after) / (after[-1] - t_warm) if after else None
    firsts = {id(next(r for r in recs if r["worker"]["pid"] == pid)) for pid in first}
    per_image = [r["seconds"] for r in ok if id(r) not in firsts]
    cpu = [r["worker"]["cpu_s"] for r in ok if id(r) not in firsts]
    return {"engine": kind, "workers": workers, "threads": threads, "images": len(jobs), "ok": len(ok),
            "wall_s": round(wall, 2), "first_record_s": round(arrivals[0], 2) if arrivals else None,
            "all_warm_s": round(t_warm, 2), "steady_images": len(after),
            "wall_images_per_s": round(len(recs) / wall, 4),
            "steady_images_per_s": round(steady, 4) if steady else None,
            "worker_s_per_image": round(sum(per_image) / len(per_image), 3) if per_image else None,
            "worker_cpu_s_per_image": round(sum(cpu) / len(cpu), 3) if cpu else None,
            "system_cpu_s_per_image": round((cpu_end - cpu_warm) / len(after), 3) if after and cpu_warm is not None
            else None,
            "peak_rss_mb_per_worker": sorted(peak.values()),
            "errors": sorted({r["error"] for r in recs if r["error"]})}


#: report columns: (header, row key)
COLUMNS = (("engine", "engine"), ("workers", "workers"), ("wall s", "wall_s"), ("first image s", "first_record_s"),
           ("all warm s", "all_warm_s"), ("wall img/s", "wall_images_per_s"), ("steady img/s", "steady_images_per_s"),
           ("steady images", "steady_images"), ("worker s/img", "worker_s_per_image"),
           ("worker CPU s/img", "worker_cpu_s_per_image"), ("system CPU s/img", "system_cpu_s_per_image"))


def table(rows: list[dict[str, Any]], derived: dict[str, Any]) -> str:
    head = "| " + " | ".join(h for h, _ in COLUMNS) + " | images ok | peak RSS/worker MiB |\n"
    head += "|" + "---|" * (len(COLUMNS) + 2) + "\n"
    body = "".join("| " + " | ".join(str(r[k]) for _, k in COLUMNS) + f" | {r['ok']}/{r['images']} | "
                   + ", ".join(f"{m:.0f}" for m in r["peak_rss_mb_per_worker"]) + " |\n" for r in rows)
    return head + body + "\n" + "".join(f"- {k}: {v}\n" for k, v in derived.items())


def derive(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed-up of 2 local workers over 1 and Ray's overhead over the local pool."""
    derived: dict[str, Any] = {}
    by = {(r["engine"], r["workers"]): r for r in rows}
    one, two = by.get(("local", 1)), by.get(("local", 2))
    if one and two and one["steady_images_per_s"] and two["steady_images_per_s"]:
        derived["speedup_2_vs_1_local_steady"] = round(two["steady_images_per_s"] / one["steady_images_per_s"], 3)
    if one and two and one["worker_cpu_s_per_image"] and two["system_cpu_s_per_image"]:
        # a derived figure, not a measured rate: on two quiet cores one worker is bound by its own CPU
        # time per image, two workers by the whole system's CPU per image spread over both cores
        cpu_1, cpu_2 = one["worker_cpu_s_per_image"], two["system_cpu_s_per_image"]
        derived["speedup_2_vs_1_from_cpu_cost"] = round(2 * cpu_1 / cpu_2, 3)
    for (kind, w), r in by.items():
        loc = by.get(("local", w))
        if kind != "ray" or not loc:
            continue
        if loc["steady_images_per_s"] and r["steady_images_per_s"]:
            ratio = loc["steady_images_per_s"] / r["steady_images_per_s"]
            derived[f"ray_overhead_{w}_workers_wall"] = f"{100 * (ratio - 1):.1f} %"
        if loc["system_cpu_s_per_image"] and r["system_cpu_s_per_image"]:
            ratio = r["system_cpu_s_per_image"] / loc["system_cpu_s_per_image"]
            derived[f"ray_overhead_{w}_workers_cpu"] = f"{100 * (ratio - 1):.1f} %"
        derived[f"ray_startup_extra_s_{w}_workers"] = round(r["first_record_s"] - loc["first_record_s"], 2)
    return derived


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=8, help="images per engine")
    p.add_argument("--side", type=int, default=256, help="long side of the inputs (px)")
    p.add_argument("--engines", default="local:1,local:2,ray:2", help="comma list of ENGINE:WORKERS")
    p.add_argument("--config", default="classical+peel", help="pipeline config")
    p.add_argument("--threads", type=int, default=1, help="compute threads per worker")
    p.add_argument("--note", default="", help="written into the report (e.g. 'under CPU contention')")
    p.add_argument("-o", "--output", required=True, help="report folder")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="layerkit_batch_bench_"))
    try:
        jobs = make_inputs(work / "in", args.n, args.side)
        rows = []
        for item in args.engines.split(","):
            kind, _, n = item.partition(":")
            row = run_engine(kind, int(n or 1), jobs, work / f"out_{kind}_{n}", args.config, args.threads)
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    derived = derive(rows)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_end": os.getloadavg(),
               "note": args.note}
    doc = {"args": vars(args), "machine": machine, "rows": rows, "derived": derived}
    (out / "batch_bench.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = f"# layerkit batch benchmark\n\n{args.n} images of {args.side} px, config {args.config}, {machine}\n\n"
    md += table(rows, derived)
    (out / "batch_bench.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
