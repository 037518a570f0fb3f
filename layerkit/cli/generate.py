"""``layerkit generate``: text prompt → generated picture → background + foreground layers (LayeringDiff)."""

from __future__ import annotations

import argparse
import json
import sys

from layerkit.cli import common
from layerkit.cli.common import HelpFormatter, Progress, add_pipeline_args, parse_numbers

EXAMPLES = """examples:
  layerkit generate "A bird flying at sunset over the mountains" --fg "A bird flying" -o bird.psd
  layerkit generate "A red car parked on a street" --fg-words 0,1,2 -o car/ --seed 3
  layerkit generate "A cat on a sofa" -o cat.ora --set generator.model=/models/sdxl generator.steps=20
  layerkit generate "a red fox" --mode fg --background street.jpg --box 200,300,420,520 -o fox.psd --config lasagna
  layerkit generate "a rainy street at night" --mode bg --foreground fox_rgba.png -o street.psd --config lasagna
  layerkit generate "a dog on the beach" --fg "a dog" --mode all -o dog.psd --config lasagna

--mode all (default): text -> picture -> layers. --mode fg: a new object (and the shadow the
model paints) in the box of a known background, which stays pixel-exact. --mode bg: a new
background around a known RGBA foreground, which stays pixel-exact (docs/lasagna.md).

The foreground phrase (--fg, or --fg-words: 0-based word indices into the prompt) is found in
the generated picture by the grounder; without either, the words before the first preposition
are used ("A bird flying at sunset" -> "A bird flying"). Needs a config with a generator and a
grounder (default: layeringdiff); their weights must be local (see docs/models.md).

output: a folder gets background.png (RGB), foreground.png (RGBA, straight alpha), alpha.png
(L) and layers.json; a .psd or .ora path gets a two-layer document."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a picture from text and split it into layers",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("text", help="prompt describing the whole picture")
    fg = p.add_mutually_exclusive_group()
    fg.add_argument("--fg", default=None, metavar="PHRASE", help="foreground phrase to put on its own layer")
    fg.add_argument("--fg-words", default=None, metavar="I,J,...",
                    help="foreground as 0-based word indices into the prompt, e.g. 0,1,2")
    p.add_argument("-o", "--output", required=True, help="output folder, or .psd / .ora file")
    p.add_argument("--height", type=int, default=1024, help="image height in pixels (multiple of 8)")
    p.add_argument("--width", type=int, default=1024, help="image width in pixels (multiple of 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--name", default=None, help="name of the foreground layer; the foreground phrase when omitted")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--mode", choices=("all", "fg", "bg"), default="all",
                   help="all: text to layers; fg: new object in --background at --box; bg: new background around --foreground")
    p.add_argument("--background", default=None, metavar="IMAGE", help="--mode fg: the known background")
    p.add_argument("--box", default=None, metavar="X0,Y0,X1,Y1", help="--mode fg: where the new object goes")
    p.add_argument("--foreground", default=None, metavar="RGBA_IMAGE", help="--mode bg: the known RGBA foreground")
    add_pipeline_args(p)
    p.set_defaults(func=run, config="layeringdiff")


def run(args: argparse.Namespace) -> int:
    from layerkit.errors import PromptError
    from layerkit.io.atomic import check_output
    from layerkit.io.layers import save_stack
    from layerkit.pipelines.generate import generate_result

    check_output(args.output, args.overwrite)  # fail before any long work
    foreground: str | list[int] | None = args.fg
    if args.fg_words is not None:
        values = parse_numbers(args.fg_words, tuple(range(1, 257)), "--fg-words", "word indices such as 0,1,2")
        if any(v != int(v) for v in values):
            raise PromptError(f"--fg-words {args.fg_words!r} must be whole numbers such as 0,1,2")
        foreground = [int(v) for v in values]
    pipe = common.build_pipeline(args, check_weights=False)  # generate() checks every model it needs at once
    pipe.progress = Progress(enabled=not args.quiet)
    kw: dict = {"name": args.name} if args.name else {}
    if args.mode == "fg":
        if args.box is None or args.background is None:
            raise PromptError("--mode fg needs --background IMAGE and --box X0,Y0,X1,Y1")
        kw.update(background=args.background, box=parse_numbers(args.box, (4,), "--box", "X0,Y0,X1,Y1 such as 200,300,420,520"))
    elif args.mode == "bg":
        if args.foreground is None:
            raise PromptError("--mode bg needs --foreground RGBA_IMAGE")
        kw.update(layer=args.foreground)
    elif args.background or args.box or args.foreground:
        raise PromptError("--background/--box belong to --mode fg and --foreground to --mode bg")
    if args.mode != "all" and (args.fg or args.fg_words):
        raise PromptError("--fg/--fg-words name the foreground of --mode all; --mode fg/bg use the prompt itself")
    res = generate_result(pipe, args.text, foreground, seed=args.seed, height=args.height, width=args.width,
                          mode=args.mode, **kw)
    save_stack(res.layers, args.output, overwrite=args.overwrite)
    if not args.quiet:
        box = None if res.prompt is None or res.prompt.boxes is None else [round(v, 1) for v in res.prompt.boxes[-1].tolist()]
        print(json.dumps({"output": args.output, "mode": args.mode, "foreground": res.layers[1].name, "box": box,
                          "seconds": round(sum(res.timings.values()), 3),
                          "timings": {k: round(v, 3) for k, v in res.timings.items()}}), file=sys.stderr)
    print(args.output)
    return 0
