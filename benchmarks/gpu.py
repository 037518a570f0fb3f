#!/usr/bin/env python
"""Per-stage latency and peak GPU memory of layerkit's learned stages, with random full-size nets.

No weights are downloaded (no hub is needed): every network is built here with the
architecture of the released model (SDXL / SD2, Grounding DINO, OWLv2, SAM ViT-H, ViTMatte-B,
the FBDD dual UNet with its widened ``conv_in``, the HFA nets), randomly initialised, written
with ``save_pretrained`` (or ``torch.save``) to a temporary folder and loaded back through the
layerkit stage that uses it (``DiffusersGenerator(model=DIR)``, ``HFSamSegmenter(DIR)``,
``FBDDDecomposer(model=DIR)``, ``HFARefiner(checkpoint=FILE)``, ...), so the measured call is
layerkit's own code path (dtype handling, batching, ROI tiling, numpy <-> torch glue).
Random weights time and size the computation exactly; the outputs are meaningless.

Rows whose ``path`` starts with ``raw`` time one network forward of the model layerkit
loaded (no pre/post-processing): they split a stage's time into its parts.

Per row: warm-up call(s), then the median wall time of N calls (``torch.cuda.synchronize``
around each), N chosen so a row takes about ``--row-budget`` seconds (``--runs`` fixes it);
peak memory = ``torch.cuda.max_memory_allocated`` over the row's calls (reset at the row's
start, weights on the device included); ``resident`` = memory allocated before the row.

    python benchmarks/gpu.py --device cuda --out /tmp/gpu_bench            # default stage set, ~3 min on an H100
    python benchmarks/gpu.py --device cuda --out DIR --stages fbdd,fbdd_train --steps 25 --fbdd-batch 8
    python benchmarks/gpu.py --tiny --device cpu --out /tmp/gpub            # tiny nets (as in the tests): plumbing check
    python benchmarks/gpu.py --construct-only --device cpu --out DIR        # build the full-size nets, count parameters

The networks are built in ``gpu_models.py``, timed by ``gpu_harness.Bench`` in the stages of
``gpu_stages.py`` and ``gpu_train.py``; this file is the command line, ``--construct-only`` and the report.

Writes ``DIR/gpu_bench.json`` (machine, versions, arguments, every row) and ``DIR/gpu_bench.md``
(the table, also printed). A stage that fails gives one row with the error; the others still run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "layerkit").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))  # gpu_models, gpu_harness, gpu_stages beside this file

import torch  # noqa: E402
from gpu_harness import Bench, MiB, fmt_time, n_params, one_line, pipe_modules  # noqa: E402
from gpu_models import (  # noqa: E402
    build_fbdd,
    build_grounding_dino,
    build_hfa,
    build_owlv2,
    build_sam_hf,
    build_sd2,
    build_sdxl,
    build_segment_anything,
    build_vitmatte,
    hfa_config,
)
from gpu_stages import ALIASES, STAGES  # noqa: E402


def parse_stages(spec: str) -> list[str]:
    """``--stages`` (names and aliases of :data:`gpu_stages.STAGES`, comma-separated) → stage names, each once."""
    out: list[str] = []
    for s in (x.strip() for x in spec.split(",")):
        if not s:
            continue
        names = ALIASES.get(s, [s])
        for n in names:
            if n not in STAGES:
                raise SystemExit(f"gpu.py: unknown stage {n!r}; valid: {', '.join([*STAGES, *ALIASES])}")
            if n not in out:
                out.append(n)
    return out


# ================================================================================================ construct-only
def construct_only(args: argparse.Namespace, stages: list[str]) -> list[dict[str, Any]]:
    """Build each stage's networks (no forward), count parameters, free them: a config check."""
    rows: list[dict[str, Any]] = []
    dev = args.device
    t_start = time.perf_counter()

    def count(stage: str, what: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        try:
            obj = fn()
            mods = pipe_modules(obj) if hasattr(obj, "components") else list(obj) if isinstance(obj, tuple) else [obj]
            parts = {type(m).__name__ + (f"[{i}]" if isinstance(obj, tuple) and len(mods) > 1 else ""): n_params(m)
                     for i, m in enumerate(mods) if isinstance(m, torch.nn.Module)}
            row = {"stage": stage, "setting": what, "params": n_params(*mods), "parts": parts,
                   "build_s": time.perf_counter() - t0}
            del obj, mods
        except Exception as e:  # noqa: BLE001
            if args.verbose:
                traceback.print_exc()
            row = {"stage": stage, "setting": what, "error": one_line(e)}
        gc.collect()
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
        rows.append(row)
        msg = row.get("error") or f"{row['params'] / 1e6:.1f} M parameters {row['parts']} ({row['build_s']:.1f} s)"
        print(f"[gpu.py {time.perf_counter() - t_start:7.1f}s] {stage}: {what}: {msg}", flush=True)

    with tempfile.TemporaryDirectory(prefix="layerkit_gpub_tok_") as tok:
        tok_dir = Path(tok)
        for s in stages:
            if s == "generator":
                builder = build_sdxl if args.generator == "sdxl" else build_sd2
                count(s, f"{args.generator} pipeline", lambda: builder(args.tiny, dev, tok_dir))
            elif s == "grounding_dino":
                count(s, f"grounding-dino-{args.gdino}", lambda: build_grounding_dino(args.tiny, dev, tok_dir, args.gdino)[0])
            elif s == "owlv2":
                count(s, "owlv2-base-patch16", lambda: build_owlv2(args.tiny, dev, tok_dir)[0])
            elif s == "sam_hf":
                count(s, "SamModel ViT-H", lambda: build_sam_hf(args.tiny, dev)[0])
            elif s == "sam":
                count(s, "segment_anything vit_h", lambda: build_segment_anything(args.tiny, dev))
            elif s == "vitmatte":
                count(s, "ViTMatte-B", lambda: build_vitmatte(args.tiny, dev)[0])
            elif s in ("fbdd", "fbdd_train"):
                if not any(r["stage"] in ("fbdd", "fbdd_train") for r in rows):
                    count(s, "FBDDModel (unet_fg, unet_bg, vae)",
                          lambda: (lambda m: (m.unet_fg, m.unet_bg, m.vae))(build_fbdd(args.tiny, dev)))
            elif s in ("hfa", "hfa_train"):
                if not any(r["stage"] in ("hfa", "hfa_train") for r in rows):
                    count(s, f"FAN + BAN {hfa_config(args.tiny)['channels']}", lambda: build_hfa(args.tiny, dev))
    return rows


# ================================================================================================ report
def machine(args: argparse.Namespace) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": args.device,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark}
    for mod in ("diffusers", "transformers", "accelerate", "lightning", "segment_anything", "layerkit"):
        try:
            info[mod] = getattr(__import__(mod), "__version__", "installed")
        except Exception:  # noqa: BLE001
            info[mod] = None
    if args.device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(args.device).index or 0
        p = torch.cuda.get_device_properties(idx)
        info.update(gpu=torch.cuda.get_device_name(idx), gpu_memory_mib=p.total_memory / MiB,
                    gpu_capability=f"{p.major}.{p.minor}", bf16_supported=torch.cuda.is_bf16_supported())
    return info


def fmt_params(n: int | None) -> str:
    if n is None:
        return ""
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    head = [f"# layerkit GPU benchmark ({'tiny nets' if meta['args']['tiny'] else 'full-size random nets'})", "",
            f"{meta.get('gpu') or meta['device']} · torch {meta['torch']} · CUDA {meta['cuda_runtime']} · "
            f"diffusers {meta.get('diffusers')} · transformers {meta.get('transformers')} · "
            f"total {meta.get('total_s', 0):.0f} s",
            ""]
    if meta["args"].get("construct_only"):
        lines = ["| stage | model | params | parts | build s |", "|---|---|---:|---|---:|"]
        for r in result["rows"]:
            if "error" in r:
                lines.append(f"| {r['stage']} | {r['setting']} | FAILED: {r['error']} | | |")
            else:
                parts = ", ".join(f"{k} {fmt_params(v)}" for k, v in r["parts"].items())
                lines.append(f"| {r['stage']} | {r['setting']} | {fmt_params(r['params'])} | {parts} | {r['build_s']:.1f} |")
        return "\n".join(head + lines) + "\n"
    lines = ["| stage | setting | path | dtype | params | median time | peak MiB | notes |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r.get('setting', '')} | {r.get('path', '')} | {r.get('dtype', '')} | "
                         f"{fmt_params(r.get('params'))} | FAILED | | {r['error'].replace('|', '/')} |")
            continue
        t = fmt_time(r["median_ms"])
        if "samples_per_s" in r:
            t = f"{t}/step · {r['samples_per_s']:.2f} samples/s"
        notes = [f"×{r['runs']}"]
        if r.get("load_s") is not None:
            notes.append(f"load {r['load_s']:.1f} s")
        if r.get("note"):
            notes.append(r["note"])
        peak = f"{r['peak_mib']:.0f}" if r.get("peak_mib") is not None else "n/a"
        lines.append(f"| {r['stage']} | {r['setting']} | {r['path']} | {r['dtype']} | {fmt_params(r.get('params'))} | {t} | "
                     f"{peak} | {'; '.join(notes)} |")
    foot = ["", "median of N timed calls after warm-up (×N); peak = torch.cuda.max_memory_allocated over the row's calls, "
            "weights on the device included; load = the stage's first-use load (from_pretrained + placement). "
            "`raw` rows time one network forward of the model layerkit loaded."]
    return "\n".join(head + lines + foot) + "\n"


def _quiet() -> None:
    """No per-file progress bars from transformers / diffusers while saving and loading."""
    for mod in ("transformers", "diffusers"):
        try:
            __import__(f"{mod}.utils.logging", fromlist=["x"]).disable_progress_bar()
        except Exception:  # noqa: BLE001 - absent or older library
            pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/gpu.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda, cuda:N or cpu")
    p.add_argument("--out", default="benchmarks/results/gpu", help="folder for gpu_bench.json and gpu_bench.md")
    p.add_argument("--tiny", action="store_true", help="tiny nets (the tests' configs) and tiny inputs: a plumbing check")
    p.add_argument("--stages", default="all", help=f"comma list of {', '.join(STAGES)} or {', '.join(ALIASES)}")
    p.add_argument("--resolution", type=int, default=1024, help="generator / grounding input / ViTMatte / HFA side (px)")
    p.add_argument("--steps", type=int, default=20, help="FBDD denoising steps")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default=None, help="stage dtype (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--generator", choices=("sdxl", "sd2"), default="sdxl", help="generator architecture")
    p.add_argument("--gen-steps", type=int, default=30, help="generator denoising steps (layeringdiff.yaml: 30)")
    p.add_argument("--no-offload", action="store_true", help="skip the generator's cpu_offload row")
    p.add_argument("--gdino", choices=("base", "tiny"), default="base", help="Grounding DINO size")
    p.add_argument("--vitmatte-tile", type=int, default=1024, help="matter.tile for the tiled ViTMatte row")
    p.add_argument("--fbdd-resolution", type=int, default=512, help="FBDD working resolution")
    p.add_argument("--fbdd-scheduler", default="dpm++", help="FBDD scheduler (ddim, dpm++, euler, ddpm)")
    p.add_argument("--fbdd-dtypes", default="bf16,fp32", help="FBDD dtypes on CUDA")
    p.add_argument("--fbdd-batch", type=int, default=None, help="FBDD training batch (default: fbdd.yaml, 4)")
    p.add_argument("--fbdd-precision", default="bf16-mixed", help="FBDD training precisions (bf16-mixed, 32-true)")
    p.add_argument("--hfa-batch", type=int, default=None, help="HFA training batch (default: hfa.yaml, 8)")
    p.add_argument("--hfa-train-size", type=int, default=None, help="HFA training crop (default: hfa.yaml, 128)")
    p.add_argument("--no-ema", action="store_true", help="train steps without the EMA update")
    p.add_argument("--runs", type=int, default=None, help="timed calls per row (default: about --row-budget seconds)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls per row (default: 1-3 by call time)")
    p.add_argument("--row-budget", type=float, default=None, help="seconds of timed calls per row (default 5; tiny 0.2)")
    p.add_argument("--max-runs", type=int, default=20, help="upper bound on timed calls per row")
    p.add_argument("--tmp", default=None, help="where the random models are written (default: the system temp folder)")
    p.add_argument("--construct-only", action="store_true", help="only build the nets and count parameters (no forward)")
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failures")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result dict also written to ``OUT/gpu_bench.json``."""
    args = build_parser().parse_args(argv)
    _quiet()
    if args.row_budget is None:
        args.row_budget = 0.2 if args.tiny else 5.0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu.py: --device cuda but torch.cuda.is_available() is False; use --device cpu (with --tiny)")
    stages = parse_stages(args.stages)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = machine(args)
    meta["args"] = vars(args)
    meta["stages"] = stages
    meta["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"[gpu.py] {meta.get('gpu') or args.device} · torch {meta['torch']} · CUDA {meta['cuda_runtime']} · "
          f"stages: {', '.join(stages)}{' · tiny' if args.tiny else ''}", flush=True)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []

    def write() -> str:  # after every stage too: a run cut short keeps what it measured
        meta["total_s"] = time.perf_counter() - t0
        result = {"meta": meta, "rows": rows}
        (out / "gpu_bench.json").write_text(json.dumps(result, indent=1, default=str))
        md = markdown(result)
        (out / "gpu_bench.md").write_text(md)
        return md

    if args.construct_only:
        rows.extend(construct_only(args, stages))
    else:
        bench = Bench(args)
        rows = bench.rows
        bench.run(stages, STAGES, after_stage=write)
    md = write()
    result = {"meta": meta, "rows": rows}
    print(md, flush=True)
    print(f"[gpu.py] wrote {out / 'gpu_bench.json'} and {out / 'gpu_bench.md'} ({meta['total_s']:.0f} s)", flush=True)
    return result


if __name__ == "__main__":
    main()
