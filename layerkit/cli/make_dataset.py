"""``layerkit make-dataset``: synthetic multi-layer ground truth (objects over a photo, controlled occlusion)."""

from __future__ import annotations

import argparse
import sys

from layerkit.batch import triplets
from layerkit.cli.common import HelpFormatter, add_report_output_args

EXAMPLES = """examples:
  layerkit make-dataset --fg-dir DEV/fg --bg-dir DEV/bg --objects 3 --n 50 --seed 0 -o multi/
  layerkit make-dataset --fg-dir DEV/fg --bg-dir DEV/bg --objects 2-5 --occlusion 0.1,0.5 -o multi_hard/
  layerkit make-dataset --task reflayer --from-batch out/ -o triplets/ --min-psnr 35

Per sample OUT/NNNN/ gets composite.png, layers/ (GT LayerStack folder, bottom to top, background
first) and prompts.json (per object: layer index, label from the file name, box_xyxy and
point_xy of its visible part, amodal box, occlusion). OUT/index.json lists the samples and the
parameters. Deterministic for a given seed, flags and folder content; see docs/benchmarks.md.
--task reflayer --from-batch DIR: image-layer-prompt triplets from a 'layerkit batch' output,
quality-filtered (thresholds below; see docs/batch.md)."""


def _range(text: str, kind: type, what: str, example: str) -> tuple:
    from layerkit.errors import DataError

    parts = text.replace("-", ",").split(",") if kind is int else text.split(",")
    try:
        vals = [kind(p) for p in parts if p.strip() != ""]
    except ValueError:
        vals = []
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2:
        raise DataError(f"{what} {text!r} is not valid; expected {example}")
    return tuple(vals)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-dataset", help="make synthetic multi-layer ground truth for eval-layers",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("--fg-dir", default=None, help="folder of RGBA PNG objects (file name = label_NN.png)")
    p.add_argument("--bg-dir", default=None, help="folder of background photos (JPEG/PNG)")
    p.add_argument("--task", choices=("multilayer", "reflayer"), default="multilayer", help="what to make")
    p.add_argument("--objects", default="3", help="objects per sample: N or MIN-MAX, within 2..6")
    p.add_argument("--n", type=int, default=50, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--occlusion", default="0.05,0.4", metavar="MIN,MAX",
                   help="share of each object hidden by the objects above it (the one just below the newest "
                        "object gets at least MIN)")
    p.add_argument("--cover", default="0.05,0.25", metavar="MIN,MAX", help="share of the canvas an object's box covers")
    p.add_argument("--max-side", type=int, default=640, help="backgrounds are downscaled to this long side")
    p.add_argument("--effects", default=None, metavar="KINDS",
                   help="one object per sample with a visual effect drawn from KINDS (shadow,reflection) and exact "
                        "GT (gt_fg = object + effect, gt_bg clean; composite-folder format, see docs/lasagna.md)")
    triplets.add_args(p)
    p.add_argument("--size", type=int, default=256, help="--task reflayer --fg-dir/--bg-dir: side of the square triplets")
    add_report_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.errors import DataError

    if args.from_batch:
        if args.task != "reflayer":
            raise DataError("--from-batch makes reflayer triplets; add --task reflayer")
        return triplets.run_from_batch(args)
    if not (args.fg_dir and args.bg_dir):
        raise DataError("make-dataset needs --fg-dir and --bg-dir (or --task reflayer --from-batch DIR)")
    from layerkit.evaluation.dataset import make_dataset
    from layerkit.evaluation.runner import EtaProgress
    from layerkit.io.atomic import check_output

    check_output(args.output, args.overwrite)
    if args.effects is not None:
        return _run_effects(args)
    if args.task == "reflayer":  # synthetic triplets with controlled occlusion (--from-batch: from a batch run)
        return _run_reflayer(args)
    objects = _range(args.objects, int, "--objects", "N or MIN-MAX such as 3 or 2-5")
    occlusion = _range(args.occlusion, float, "--occlusion", "MIN,MAX such as 0.05,0.4")
    cover = _range(args.cover, float, "--cover", "MIN,MAX such as 0.05,0.25")
    bar = EtaProgress(args.n, "make-dataset", enabled=not args.quiet)

    def show(i: int, meta: dict) -> None:
        objs = ", ".join(f"{o['label']} ({o['occlusion']:.2f})" for o in meta["objects"])
        bar.update(f"{i:04d}", f"{meta['canvas_wh'][0]}x{meta['canvas_wh'][1]}: {objs}")

    make_dataset(args.fg_dir, args.bg_dir, args.output, n=args.n, objects=objects, seed=args.seed, cover=cover,
                 occlusion=occlusion, max_side=args.max_side, overwrite=args.overwrite, progress=show)
    if not args.quiet:
        print(f"wrote {args.n} samples to {args.output}", file=sys.stderr)
    print(args.output)
    return 0


def _run_effects(args: argparse.Namespace) -> int:
    """``--effects``: single-object samples with a shadow or reflection (layerkit.evaluation.effects_data)."""
    from layerkit.evaluation.effects_data import make_effects_dataset, parse_effects

    effects = parse_effects(args.effects)
    cover = _range(args.cover, float, "--cover", "MIN,MAX such as 0.05,0.25")
    make_effects_dataset(args.fg_dir, args.bg_dir, args.output, effects=effects, n=args.n, seed=args.seed, cover=cover,
                         max_side=args.max_side, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {args.n} effect samples ({', '.join(effects)}) to {args.output}", file=sys.stderr)
    print(args.output)
    return 0


def _run_reflayer(args: argparse.Namespace) -> int:
    """``--task reflayer``: triplets with every prompt kind (see :mod:`layerkit.training.reflayer_data`)."""
    from layerkit.errors import DataError
    from layerkit.training.reflayer_data import write_triplets

    occlusion = _range(args.occlusion, float, "--occlusion", "MIN,MAX such as 0.1,0.5")
    if not 0.0 <= occlusion[0] <= occlusion[1] < 1.0:
        raise DataError(f"--occlusion must be MIN,MAX with 0 <= MIN <= MAX < 1, got {args.occlusion}")
    if args.size < 16 or args.size % 8:
        raise DataError(f"--size must be a multiple of 8 and >= 16, got {args.size}")
    write_triplets(args.fg_dir, args.bg_dir, args.output, n=args.n, size=args.size, seed=args.seed,
                   occlusion=occlusion, overwrite=args.overwrite)
    if not args.quiet:
        print(f"wrote {args.n} reflayer triplets to {args.output}", file=sys.stderr)
    print(args.output)
    return 0
