"""``layerkit eval-layers``: score multi-layer decompositions against synthetic GT stacks (LayerD's protocol by default)."""

from __future__ import annotations

import argparse
import sys

from layerkit.cli.common import MULTILAYER_CONFIG, HelpFormatter, add_pipeline_args, add_report_output_args

EXAMPLES = """examples:
  layerkit make-dataset --fg-dir DEV/fg --bg-dir DEV/bg --objects 3 --n 50 --seed 0 -o multi/
  layerkit eval-layers multi/ -o layers/                      # config classical+peel
  layerkit eval-layers multi/ --pred-dir my_stacks/ -o layers_mine/
  layerkit eval-layers multi/ --pred-dir my_stacks/ --protocol layerkit -o layers_mine_lk/

Each sample's prediction is pipe.layers(composite, prompts) (one prompt per GT object, bottom to
top unless --shuffle-prompts; the pipeline infers the depth order unless --gt-order), or
PRED_DIR/<id> (layer folder, .psd or .ora) with --pred-dir.
Both protocols group layers that do not overlap, score each layer pair by RGB L1 over the GT
alpha > 0 and alpha soft IoU, align the stacks by order-preserving DTW with cost
(L1 + 1 - IoU)/2 and then merge adjacent layers greedily, reporting each merge level.
--protocol layerd (default) is LayerD's evaluation step for step, so figures compare with
published ones: 8-bit layers composited as PIL does, the merge chosen by LayerD's gain estimate
from the current matches, levels up to the deepest one reached, stacks with fewer than 2 layers
skipped. --protocol layerkit re-aligns every candidate merge and takes the one that lowers the
mean cost most (float compositing, every level 0..--max-merges, no stack skipped)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-layers", help="score multi-layer decompositions (LayerD protocol)",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("data", metavar="DATA", help="folder written by layerkit make-dataset")
    p.add_argument("--prompt", choices=("box", "point", "box+point"), default="box", help="prompt kind per object")
    p.add_argument("--shuffle-prompts", type=int, default=None, metavar="SEED",
                   help="give the prompts in a seeded random order instead of bottom to top")
    p.add_argument("--gt-order", action="store_true",
                   help="give the pipeline the true depth order (front-most first, order=given) instead of letting it infer it")
    p.add_argument("--pred-dir", default=None, help="score precomputed stacks PRED_DIR/<id> instead of running a pipeline")
    p.add_argument("--max-merges", type=int, default=5, help="greedy merges of adjacent layers (0 = none)")
    p.add_argument("--no-group", action="store_true", help="do not group non-overlapping layers first")
    p.add_argument("--protocol", choices=("layerd", "layerkit"), default="layerd",
                   help="layerd: LayerD's exact evaluation (compare with published figures); layerkit: exact "
                        "re-alignment of every candidate merge")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N samples")
    add_report_output_args(p)
    add_pipeline_args(p, MULTILAYER_CONFIG)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.cli.bench import pipeline_overrides, spec_pipeline
    from layerkit.errors import DataError
    from layerkit.evaluation import layer_eval as LE
    from layerkit.evaluation.dataset import find_layer_samples
    from layerkit.evaluation.runner import EtaProgress, dump_json, environment, markdown_table, summarise, write_outputs
    from layerkit.io.atomic import check_output

    check_output(args.output, args.overwrite)
    if args.max_merges < 0:
        raise DataError(f"--max-merges must be 0 or more, got {args.max_merges}")
    samples = find_layer_samples(args.data)
    if args.limit is not None:
        if args.limit < 1:
            raise DataError(f"--limit must be at least 1, got {args.limit}")
        samples = samples[:args.limit]
    if args.pred_dir is not None:
        from pathlib import Path

        if Path(args.pred_dir).is_dir() and not any(not e.name.startswith(".") for e in Path(args.pred_dir).iterdir()):
            raise DataError(f"prediction folder {args.pred_dir!r} is empty; it should hold one stack per sample "
                            "(<id>/, <id>.psd or <id>.ora)")
        predict, source = LE.folder_predictor(args.pred_dir), f"stacks in {args.pred_dir}"
    else:
        predict = LE.pipeline_predictor(spec_pipeline(args, args.config), args.prompt, args.shuffle_prompts, args.gt_order)
        source = f"config {args.config}"
    label = "pred" if args.pred_dir else args.config
    records = LE.evaluate_layer_samples(predict, samples, args.max_merges, not args.no_group,
                                        EtaProgress(len(samples), label, enabled=not args.quiet), args.protocol)
    ok = [r for r in records if "error" not in r]
    scored = [r for r in ok if "skipped" not in r]
    levels = LE.aggregate([r["levels"] for r in scored], args.max_merges, args.protocol)
    cols = LE.sample_columns(args.max_merges)
    mean = summarise(scored, [k for k, _ in cols if k not in ("id", "error")])
    meta = {"data": args.data, "prediction": source, "prompt": args.prompt,
            "prompt order": ("true depth order (given)" if args.gt_order else "bottom to top" if args.shuffle_prompts is None
                             else f"shuffled (seed {args.shuffle_prompts})"),
            "protocol": {"layerd": "layerd (LayerD's evaluation: gain rule, 8-bit PIL compositing, stacks < 2 layers "
                                   "skipped)", "layerkit": "layerkit (exact re-alignment per candidate merge)"}[args.protocol],
            "grouping": not args.no_group, "max merges": args.max_merges,
            "overrides": " ".join(pipeline_overrides(args)) or "none",
            "layerkit commit": environment()["git"]}
    doc = {**meta, "protocol": args.protocol, "n": len(records), "n_ok": len(ok), "n_skipped": len(ok) - len(scored),
           "n_failed": len(records) - len(ok), "levels": levels,
           "mean": mean, "samples": records, "env": environment()}
    md = (f"# layerkit eval-layers: {source}\n\n" + "".join(f"- **{k}**: {v}\n" for k, v in meta.items())
          + f"- **samples**: {len(scored)} scored, {len(ok) - len(scored)} skipped, {len(records) - len(ok)} failed\n"
          + "\n## Mean per merge level\n\n" + markdown_table(levels, LE.level_columns(args.protocol), 4)
          + "\n## Per sample\n\n" + markdown_table([dict(r, error=r.get("error", r.get("skipped", ""))) for r in records]
                                                   + [dict(mean, id="**mean**", error="")], cols, 4))
    write_outputs(args.output, {"results.json": dump_json(doc), "table.md": md}, overwrite=args.overwrite)
    if not args.quiet and levels:
        first, last = levels[0], levels[-1]
        print(f"{label} ({args.protocol}): {len(scored)}/{len(records)} scored | cost {first['cost']:.4f} -> "
              f"{last['cost']:.4f}, RGB L1 {first['rgb_l1']:.4f} -> {last['rgb_l1']:.4f}, IoU {first['alpha_iou']:.4f} -> "
              f"{last['alpha_iou']:.4f} (0 -> {last['merges']} merges)", file=sys.stderr)
    print(args.output)
    if not scored:  # always on stderr, also with --quiet: the exit status alone says too little
        first = next((r["error"] for r in records if "error" in r), None)
        why = f"first error: {first}" if first else "every stack has fewer than 2 layers"
        print(f"layerkit: error: no sample was scored ({len(records)}); {why}; details in {args.output}", file=sys.stderr)
    return 0 if scored else 1
