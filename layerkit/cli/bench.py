"""``layerkit bench``: several configs on one composite folder → results.json, table.md, report.html."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from layerkit.cli.common import HelpFormatter, add_pipeline_args, add_report_output_args, pipeline_overrides

EXAMPLES = """examples:
  layerkit bench --data /tmp/dev30 --configs classical,classical+hfa --prompt box -o bench/
  layerkit bench --data /tmp/dev30 --configs classical,my.yaml+hfa --set trimapper.band_ratio=0.05 -o bench2/

A config spec is a shipped config name or a YAML path, optionally +OVERLAY (a partial config
from layerkit/configs/overlay/OVERLAY.yaml, or a YAML path) merged on top; --set applies to
every config. Output: results.json, table.md, report.html (self-contained: pictures embedded,
sortable tables, metric distributions, time per stage, worst samples first) and plots/*.png.
On a real-photo folder (<ID>_input.png + <ID>_alpha.png) the plain GrabCut -> closed-form ->
Telea chain runs beside the configs (--no-peer leaves it out); see layerkit eval --help.

  layerkit bench --interactive --data /tmp/dev30 --configs classical -o noc/
  layerkit bench --interactive --data ../shared/data/dev/real_alpha --configs classical -o noc_real/

--interactive runs the interactive-segmentation protocol instead: a simulated user clicks at
the interior of the largest error region (positive on missed object, negative on wrong
background) up to --max-clicks times; per config (its segmenter, then the app's refinement
from the current mask) and for plain OpenCV GrabCut driven by the same clicks (the peer;
--no-peer leaves it out): NoC@85, NoC@90, IoU after 1/3/5 clicks. Output: results.json, table.md."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="compare configs on a composite folder (HTML report)",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("--data", required=True, help="folder of composites (make_composites.py output) or real photos (<ID>_input.png + <ID>_alpha.png)")
    p.add_argument("--configs", required=True, help="comma-separated config specs, e.g. classical,classical+hfa")
    add_eval_args(p)
    from layerkit.cli.eval import add_real_args

    add_real_args(p)
    p.add_argument("--thumb-height", type=int, default=128, help="height of the report's thumbnails in pixels")
    p.add_argument("--gallery", type=int, default=None, metavar="N", help="at most N gallery rows per config (default all)")
    g = p.add_argument_group("interactive protocol")
    g.add_argument("--interactive", action="store_true",
                   help="simulated clicks instead of one prompt: NoC@85/90 and IoU@1/3/5 per config and for plain GrabCut")
    g.add_argument("--max-clicks", type=int, default=20, metavar="N", help="clicks per image at most (--interactive)")
    add_pipeline_args(p)
    p.set_defaults(func=run)


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``eval`` and ``bench``: prompt kind and file, limit, output."""
    from layerkit.evaluation.composites import PROMPT_KINDS

    p.add_argument("--prompt", choices=PROMPT_KINDS, default="box",
                   help="prompt given to the pipeline per sample (gt-mask: the GT mask, α > 0.5, as a mask prompt)")
    p.add_argument("--box-from", default="box.json", metavar="FILE", help="per-sample JSON holding box_xyxy and point_xy")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N samples")
    add_report_output_args(p)


def spec_pipeline(args: argparse.Namespace, spec: str) -> Any:
    """Build the pipeline of config ``spec`` with ``--set``/``--device``/``--seed``/``--max-pixels``."""
    from layerkit.cli import common  # looked up at call time, so a test's stand-in never sticks

    return common.build_pipeline(args, spec)


def load_samples(args: argparse.Namespace, data: str) -> list:
    """Check the output path and the data folder (before any long work); returns the samples."""
    from layerkit.errors import DataError
    from layerkit.evaluation.composites import find_samples
    from layerkit.io.atomic import check_output

    check_output(args.output, args.overwrite)
    samples = find_samples(data, args.box_from, args.prompt)
    if args.limit is not None:
        if args.limit < 1:
            raise DataError(f"--limit must be at least 1, got {args.limit}")
        samples = samples[:args.limit]
    return samples


def run(args: argparse.Namespace) -> int:
    from layerkit.errors import ConfigError
    from layerkit.evaluation.bench import composite_outputs, run_config
    from layerkit.evaluation.runner import write_outputs

    specs = [s.strip() for s in args.configs.split(",") if s.strip()]
    if not specs:
        raise ConfigError("--configs is empty; give comma-separated config specs such as classical,classical+hfa")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"--configs names a config twice: {args.configs}")
    from layerkit.cli.eval import _real, run_real_photos

    if args.interactive:
        return run_interactive(args, specs)
    if _real(args.data):
        return run_real_photos(args, specs, html=True, title="layerkit bench (real photos)")
    samples = load_samples(args, args.data)
    pipes = [(spec, spec_pipeline(args, spec)) for spec in specs]  # every config checked before any long run
    runs = []
    for spec, pipe in pipes:
        runs.append(run_config(pipe, spec, samples, args.prompt, visuals=True, thumb_height=args.thumb_height,
                               quiet=args.quiet, info={"overrides": " ".join(pipeline_overrides(args)) or "none"}))
    meta = {"data": args.data, "prompt": args.prompt, "prompt file": args.box_from, "samples": len(samples),
            "configs": ", ".join(specs)}
    files = composite_outputs(runs, meta, html=True, title="layerkit bench", gallery_limit=args.gallery)
    write_outputs(args.output, files, overwrite=args.overwrite)
    if not args.quiet:
        for r in runs:
            ok = sum("error" not in x for x in r.records)
            print(f"{r.name}: {ok}/{len(r.records)} ok, SAD {r.mean['sad']:.3f}, IoU {r.mean['iou']:.4f}, "
                  f"{r.mean['seconds']:.2f} s/sample", file=sys.stderr)
    print(args.output)
    failed = [r for r in runs if not any("error" not in x for x in r.records)]
    for r in failed:  # always on stderr, also with --quiet: the exit status alone says too little
        first = next((x["error"] for x in r.records if "error" in x), "no sample")
        print(f"layerkit: error: every sample of {r.name} failed ({len(r.records)}); first: {first}; "
              f"details in {args.output}", file=sys.stderr)
    return 1 if failed else 0


def run_interactive(args: argparse.Namespace, specs: list[str]) -> int:
    """``--interactive``: the click protocol of :mod:`layerkit.evaluation.interactive` per config + the peer."""
    from layerkit.app.interactive import ClickRefiner, GrabCutPeer, click_segmenter
    from layerkit.errors import ConfigError
    from layerkit.evaluation import interactive as I
    from layerkit.evaluation.runner import dump_json, write_outputs
    from layerkit.io.atomic import check_output

    check_output(args.output, args.overwrite)
    if I.PEER in specs:
        raise ConfigError(f"--configs may not name {I.PEER!r}: that is the peer's name")
    ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
    kind, samples = I.find_click_samples(args.data, args.limit, ids=ids)
    if args.max_clicks < 1:
        raise ConfigError(f"--max-clicks must be at least 1, got {args.max_clicks}")
    methods: dict[str, Any] = {spec: ClickRefiner(click_segmenter(spec_pipeline(args, spec).segmenter)) for spec in specs}
    if not args.no_peer:
        methods[I.PEER] = GrabCutPeer()
    result = I.run_protocol(methods, samples, args.max_clicks, quiet=args.quiet)
    doc = {"data": str(args.data), "kind": kind, "configs": specs,
           "overrides": " ".join(pipeline_overrides(args)) or "none", **result}
    table = I.table_markdown(result, kind)
    write_outputs(args.output, {"results.json": dump_json(doc), "table.md": "# layerkit bench --interactive\n\n" + table},
                  overwrite=args.overwrite)
    if not args.quiet:
        for m, v in result["means"].items():
            print(f"{m}: NoC@85 {v['NoC@85']:.2f}, NoC@90 {v['NoC@90']:.2f}, IoU@1 {v['IoU@1']:.3f}, "
                  f"IoU@5 {v['IoU@5']:.3f}", file=sys.stderr)
    print(args.output)
    return 0
