"""``layerkit batch``: decompose a collection of images, resumably, on a local pool or on Ray."""

from __future__ import annotations

import argparse
import os
import sys

from layerkit.cli.common import MULTILAYER_CONFIG, HelpFormatter, add_pipeline_args, pipeline_overrides

EXAMPLES = """examples:
  layerkit batch photos/ -o out/ --prompts prompts.jsonl --workers 2
  layerkit batch photos/ -o out/ --auto --format psd
  layerkit batch 'shards/*.jsonl' -o /shared/out --auto --engine ray --address auto --workers 64
  layerkit batch photos/ -o out/ --prompts prompts.jsonl --resume      # after a crash or Ctrl-C

SOURCE: a folder (images matching --pattern), an image glob, or JSON-lines shards
('shards/*.jsonl') whose lines are {"image": PATH, "objects": [...]}. --prompts prompts.jsonl
gives a folder's images their objects, one line per image: {"image": "a.jpg", "objects":
[{"box": [x0,y0,x1,y1]}, {"points": [[x,y]], "labels": [1]}, {"text": "..."}]} (the object
schema of 'layerkit layers --prompts'). Images without objects need --auto.

output: OUT/ID (folder), OUT/ID.psd or OUT/ID.ora per image, each written atomically;
OUT/index.jsonl, one record per image (objects found, layer files, recomposition PSNR, seconds,
error), rewritten atomically as the run goes; OUT/summary.json. A bad image is recorded with its
error and the run goes on. Exit code: 0 all images done, 1 some failed, 130 interrupted, 2 bad
options. See docs/batch.md."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="decompose a collection of images (resumable; local pool or Ray)",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("source", help="folder, image glob, or .jsonl shard glob (quote globs)")
    p.add_argument("-o", "--output", required=True, help="output folder (created; reused by --resume)")
    p.add_argument("--prompts", default=None, metavar="JSONL", help="objects per image of a folder source")
    p.add_argument("--auto", action="store_true", help="images without objects are decomposed automatically")
    p.add_argument("--pattern", default="*", help="glob inside a folder source ('**/*' recurses)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (by id)")
    p.add_argument("--format", choices=("folder", "psd", "ora"), default="folder", help="per-image output format")
    p.add_argument("--order", default="auto", help="default object order: auto or given")
    p.add_argument("--max-layers", type=int, default=20, help="most layers per image, background included (2..20)")
    p.add_argument("--min-area", type=float, default=5e-4, help="alpha mass below which an object is not found")
    p.add_argument("--resume", action="store_true", help="continue a run in OUT: skip complete images, redo the rest")
    e = p.add_argument_group("engine")
    e.add_argument("--engine", choices=("local", "ray"), default="local", help="local process pool or Ray Data")
    e.add_argument("--workers", type=int, default=1, help="worker processes (local) or actors (ray)")
    e.add_argument("--threads", type=int, default=None, help="compute threads per worker (default: CPUs / workers)")
    e.add_argument("--address", default=None, help="Ray cluster address (auto, ray://HOST:10001); default: start Ray locally")
    e.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each Ray actor requests (learned configs)")
    e.add_argument("--index-every", type=float, default=5.0, help="seconds between atomic index rewrites")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_pipeline_args(p, MULTILAYER_CONFIG)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.batch.jobs import list_jobs
    from layerkit.batch.runner import run_batch
    from layerkit.batch.worker import WorkerSpec
    from layerkit.errors import ConfigError
    from layerkit.pipelines.sequential import check_max_layers

    check_max_layers(args.max_layers)
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.gpus_per_worker and args.engine != "ray":
        raise ConfigError("--gpus-per-worker is for --engine ray; with the local pool pick the GPU with --device")
    jobs = list_jobs(args.source, args.prompts, args.pattern, args.limit)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    overrides = pipeline_overrides(args)
    if args.gpus_per_worker and args.device is None:
        overrides.append("pipeline.device=cuda")
    spec = WorkerSpec(out=args.output, config=args.config, overrides=overrides, fmt=args.format, auto=args.auto,
                      order=args.order, max_layers=args.max_layers, min_area=args.min_area, threads=threads)
    summary = run_batch(jobs, spec, engine=args.engine, workers=args.workers, resume=args.resume, address=args.address,
                        gpus_per_worker=args.gpus_per_worker, progress=not args.quiet, index_every=args.index_every)
    print(summary.line(), file=sys.stderr)
    print(args.output)
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0
