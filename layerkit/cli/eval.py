"""``layerkit eval``: score a config on a folder of synthetic composites with exact ground truth."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from layerkit.cli import bench as _bench
from layerkit.cli.bench import add_eval_args, load_samples, pipeline_overrides
from layerkit.cli.common import HelpFormatter, add_pipeline_args

EXAMPLES = """examples:
  python /work/shared/data/dev/make_composites.py DEV --out /tmp/dev30 --n 30 --seed 0
  layerkit eval /tmp/dev30 --config classical -o report/
  layerkit eval /tmp/dev30 --config classical --prompt point --box-from box.json -o report_point/
  layerkit eval /tmp/dev30 --config classical+hfa --set trimapper.band_ratio=0.05 --html -o report2/

DATA_DIR holds one folder per sample with composite.png, gt_alpha.png, gt_fg.png, gt_bg.png and
box.json ("box_xyxy", "point_xy"). Metrics per sample and their mean: alpha SAD/1000, MSE x1e3,
gradient error/1000 (sigma 1.4), soft IoU; foreground L1 weighted by the GT alpha; background
PSNR over the occluded region (GT alpha > 0.01) and the whole image; PSNR of the recomposed
stack against the input; seconds per sample; peak RSS. Output: results.json, table.md
(and report.html with --html). A failing sample is recorded with its error; the run goes on."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a config on synthetic composites with ground truth",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("data", metavar="DATA_DIR", help="folder written by make_composites.py")
    add_eval_args(p)
    p.add_argument("--html", action="store_true", help="also write report.html (thumbnails, plots) and plots/*.png")
    add_pipeline_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.evaluation.bench import composite_outputs, run_config
    from layerkit.evaluation.runner import write_outputs

    samples = load_samples(args, args.data)
    pipe = spec_pipeline(args, args.config)
    result = run_config(pipe, args.config, samples, args.prompt, visuals=args.html, quiet=args.quiet)
    meta = {"data": args.data, "prompt": args.prompt, "prompt file": args.box_from,
            "overrides": " ".join(pipeline_overrides(args)) or "none"}
    write_outputs(args.output, composite_outputs([result], meta, html=args.html, title="layerkit eval"),
                  overwrite=args.overwrite)
    ok = sum("error" not in r for r in result.records)
    m = result.mean
    if not args.quiet:
        print(f"{args.config}: {ok}/{len(result.records)} ok | SAD {m['sad']:.3f} MSE×1e3 {m['mse_e3']:.3f} "
              f"grad {m['grad']:.3f} IoU {m['iou']:.4f} F-L1 {m['fg_l1']:.4f} B-PSNR(occ) {m['bg_psnr_occ']:.2f} "
              f"recomp {m['recomp_psnr']:.2f} dB | {m['seconds']:.2f} s/sample, peak RSS {m['rss_mb']:.0f} MiB",
              file=sys.stderr)
    print(args.output)
    if ok == 0:
        print("layerkit: every sample failed; see the error column of table.md", file=sys.stderr)
        return 1
    return 0


def spec_pipeline(args: argparse.Namespace, spec: str) -> Any:
    """The pipeline of config ``spec`` (see :func:`layerkit.cli.bench.spec_pipeline`)."""
    return _bench.spec_pipeline(args, spec)
