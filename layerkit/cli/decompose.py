"""``layerkit decompose``: one image + one prompt → background + object layer."""

from __future__ import annotations

import argparse
import json
import sys

from layerkit.cli import common
from layerkit.cli.common import HelpFormatter, Progress, add_pipeline_args, add_prompt_args, prompt_from_args

EXAMPLES = """examples:
  layerkit decompose photo.jpg --box 120,40,380,500 -o out/
  layerkit decompose photo.jpg --point 250,260 --point 30,30,0 -o out.psd
  layerkit decompose photo.jpg --mask object.png -o out.ora --set trimapper.band=12
  layerkit decompose photo.jpg --text "the white horse" --config layeringdiff -o out/

output: a folder gets background.png (RGB), foreground.png (RGBA, straight alpha),
alpha.png (L) and layers.json; a .psd or .ora path gets a two-layer document."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decompose", help="split an image into background + one object layer",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("image", help="input image (PNG, JPEG, WebP, TIFF, BMP)")
    add_prompt_args(p)
    p.add_argument("-o", "--output", required=True, help="output folder, or .psd / .ora file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--name", default=None, help="name of the object layer")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    add_pipeline_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.io.atomic import check_output
    from layerkit.io.layers import save_stack

    check_output(args.output, args.overwrite)  # fail before any long work
    prompt = prompt_from_args(args)
    pipe = common.build_pipeline(args)
    pipe.progress = Progress(enabled=not args.quiet)
    res = pipe(args.image, prompt, name=args.name)
    save_stack(res.layers, args.output, overwrite=args.overwrite)
    total = sum(res.timings.values())
    if not args.quiet:
        print(json.dumps({"output": args.output, "roi": res.roi, "seconds": round(total, 3),
                          "timings": {k: round(v, 3) for k, v in res.timings.items()}}), file=sys.stderr)
    print(args.output)
    return 0
