"""``layerkit eval-matting``: score a config's matting stage on real photos with trimaps."""

from __future__ import annotations

import argparse
import sys

from layerkit.cli.common import HelpFormatter, add_pipeline_args, add_report_output_args

EXAMPLES = """examples:
  layerkit eval-matting /work/shared/data/dev/real_alpha --config classical -o matting/
  layerkit eval-matting DIR --config classical --set matter.radius=2 --trimaps 1 --html -o matting_r2/

DIR holds <ID>_input.png, <ID>_alpha.png (ground-truth matte) and <ID>_trimap1.png,
<ID>_trimap2.png (0 background, 255 foreground, other values unknown), as alphamatting.com.
The config's matter stage runs on each (image, trimap); SAD/1000, MSE x1e3, gradient/1000
(sigma 1.4) and connectivity/1000 (step 0.1) are summed over the unknown pixels, as in the
Deep Image Matting evaluation code. The matte is clamped to the trimap's known values and
rounded to 8 bits before scoring (--no-quantize keeps it float)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-matting", help="score the matting stage on photos with GT mattes and trimaps",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("data", metavar="DIR", help="folder of <ID>_input.png, <ID>_alpha.png, <ID>_trimapK.png")
    p.add_argument("--trimaps", default="1,2", help="comma-separated trimap suffixes to evaluate")
    p.add_argument("--no-quantize", action="store_true", help="score the float matte instead of its 8-bit rounding")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N (image, trimap) pairs")
    p.add_argument("--html", action="store_true", help="also write report.html with thumbnails and plots")
    add_report_output_args(p)
    add_pipeline_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.cli.bench import pipeline_overrides, spec_pipeline
    from layerkit.errors import DataError
    from layerkit.evaluation import matting as MT
    from layerkit.evaluation.report import Run, render_html, report_plots
    from layerkit.evaluation.runner import EtaProgress, dump_json, environment, markdown_table, summarise, write_outputs
    from layerkit.io.atomic import check_output

    check_output(args.output, args.overwrite)
    samples = MT.find_matting_samples(args.data, [t.strip() for t in args.trimaps.split(",") if t.strip()])
    if args.limit is not None:
        if args.limit < 1:
            raise DataError(f"--limit must be at least 1, got {args.limit}")
        samples = samples[:args.limit]
    pipe = spec_pipeline(args, args.config)
    thumbs: dict[str, dict[str, str]] = {}

    def keep(sample: MT.MattingSample, arrays: dict) -> None:
        thumbs[sample.id] = MT.matting_thumbs(arrays)

    records = MT.evaluate_matting(pipe.matter, samples, not args.no_quantize,
                                  EtaProgress(len(samples), args.config, enabled=not args.quiet), keep if args.html else None)
    mean = summarise(records, MT.METRIC_KEYS)
    mean["rss_mb"] = max([r["rss_mb"] for r in records if "rss_mb" in r], default=float("nan"))
    ok = sum("error" not in r for r in records)
    meta = {"data": args.data, "config": args.config, "trimaps": args.trimaps,
            "overrides": " ".join(pipeline_overrides(args)) or "none",
            "layerkit commit": environment()["git"], "quantized to 8 bits": not args.no_quantize}
    doc = {**meta, "n": len(records), "n_ok": ok, "n_failed": len(records) - ok, "mean": mean,
           "mean_per_trimap": MT.per_trimap_means(records), "samples": records, "env": environment()}
    rows = [dict(r, error=r.get("error", "")) for r in records] + MT.per_trimap_means(records) + [dict(mean, id="**mean**")]
    md = f"# layerkit eval-matting: {args.config}\n\n" + "".join(f"- **{k}**: {v}\n" for k, v in meta.items()) + "\n" + \
        markdown_table(rows, MT.TABLE_COLUMNS)
    files: dict[str, str | bytes] = {"results.json": dump_json(doc), "table.md": md}
    if args.html:
        run_ = Run(args.config, records, mean, {}, thumbs, {})
        plots = report_plots([run_], MT.METRICS)
        files.update(plots)
        files["report.html"] = render_html("layerkit eval-matting", [run_], MT.METRICS, "sad", meta,
                                           extra_columns=(("id", "image"), ("unknown_px", "unknown px")), plots=plots)
    write_outputs(args.output, files, overwrite=args.overwrite)
    if not args.quiet:
        print(f"{args.config}: {ok}/{len(records)} ok | SAD {mean['sad']:.3f} MSE×1e3 {mean['mse_e3']:.3f} "
              f"grad {mean['grad']:.3f} conn {mean['conn']:.3f} | {mean['seconds']:.2f} s/image", file=sys.stderr)
    print(args.output)
    return 0 if ok else 1
