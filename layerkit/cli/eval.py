"""``layerkit eval``: score a config on synthetic composites with exact ground truth, or on real photos
with a ground-truth matte (then beside the plain public-library chain, in the same run)."""

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

Real photos (a folder of <ID>_input.png + <ID>_alpha.png, as alphamatting.com):
  layerkit eval /work/shared/data/dev/real_alpha --config classical --prompt box -o real/
  layerkit eval /work/shared/data/dev/real_alpha --prompt point --ids GT05,GT07 --no-peer -o real_pt/
The prompt is derived from the GT matte as a user would give it (box: around alpha > 0.5, padded
by 4 % of the long side; point: the deepest interior pixel); alpha SAD/MSE/gradient/soft-IoU are
summed over the whole image, with time and peak RSS, for the config and for the plain chain
(OpenCV GrabCut -> pymatting closed-form -> OpenCV Telea) on the same prompts.

A composite DATA_DIR holds one folder per sample with composite.png, gt_alpha.png, gt_fg.png, gt_bg.png and
box.json ("box_xyxy", "point_xy"). Metrics per sample and their mean: alpha SAD/1000, MSE x1e3,
gradient error/1000 (sigma 1.4), soft IoU; foreground L1 weighted by the GT alpha; background
PSNR over the occluded region (GT alpha > 0.01) and the whole image; PSNR of the recomposed
stack against the input; seconds per sample; peak RSS. Output: results.json, table.md
(and report.html with --html). A failing sample is recorded with its error; the run goes on."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a config on synthetic composites with ground truth",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("data", metavar="DATA_DIR", help="folder written by make_composites.py, or of <ID>_input.png + <ID>_alpha.png")
    add_eval_args(p)
    add_real_args(p)
    p.add_argument("--html", action="store_true", help="also write report.html (thumbnails, plots) and plots/*.png")
    add_pipeline_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.evaluation.bench import composite_outputs, run_config
    from layerkit.evaluation.runner import write_outputs

    if _real(args.data):
        return run_real_photos(args, [args.config], html=args.html, title="layerkit eval (real photos)")
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


def _real(data: str) -> bool:
    from layerkit.evaluation.realphoto import is_real_photo_folder

    return is_real_photo_folder(data)


def add_real_args(p: argparse.ArgumentParser) -> None:
    """Options of real-photo folders (``<ID>_input.png`` + ``<ID>_alpha.png``)."""
    g = p.add_argument_group("real photos (<ID>_input.png + <ID>_alpha.png)")
    g.add_argument("--no-peer", action="store_true", help="do not run the plain GrabCut -> closed-form -> Telea chain beside")
    g.add_argument("--ids", default=None, metavar="ID,ID", help="evaluate only these photo ids (e.g. a held-out half)")


def run_real_photos(args: argparse.Namespace, specs: list[str], html: bool, title: str) -> int:
    """Evaluate ``specs`` and the plain chain on a real-photo folder; write the output folder."""
    from layerkit.errors import DataError
    from layerkit.evaluation import realphoto as R
    from layerkit.evaluation.runner import write_outputs
    from layerkit.io.atomic import check_output

    check_output(args.output, args.overwrite)
    ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
    samples = R.find_real_samples(args.data, ids)
    if args.limit is not None:
        if args.limit < 1:
            raise DataError(f"--limit must be at least 1, got {args.limit}")
        samples = samples[:args.limit]
    pipes = [(spec, spec_pipeline(args, spec)) for spec in specs]  # every config checked before any long run
    overrides = " ".join(pipeline_overrides(args)) or "none"
    runs = [R.run_real(R.pipeline_predictor(pipe), spec, samples, args.prompt, visuals=html, quiet=args.quiet,
                       info={"overrides": overrides}) for spec, pipe in pipes]
    peer = None if args.no_peer else R.run_real(R.peer_predictor(), R.PEER_NAME, samples, args.prompt, visuals=html,
                                                quiet=args.quiet)
    meta = {"data": args.data, "photos": ", ".join(s.id for s in samples), "prompt": args.prompt,
            "prompt rule": "box: GT α > 0.5 padded by 4 % of the long side; point: deepest interior pixel",
            "overrides": overrides, "metrics over": "the whole image"}
    write_outputs(args.output, R.real_outputs(runs, peer, meta, html=html, title=title), overwrite=args.overwrite)
    if not args.quiet:
        for row in R.summary_rows([*runs, *([peer] if peer else [])], peer):
            print(f"{row['run']}: {row['n']} ok | SAD {row['sad']:.3f} MSE×1e3 {row['mse_e3']:.3f} grad {row['grad']:.3f} "
                  f"IoU {row['iou']:.4f} (worst {row['min_iou']:.3f}) SAD÷peer {row.get('sad_vs_peer', float('nan')):.3f} | "
                  f"{row['seconds']:.2f} s/image, peak RSS {row['rss_mb']:.0f} MiB", file=sys.stderr)
    print(args.output)
    return 0 if all(any("error" not in x for x in r.records) for r in runs) else 1
