"""``layerkit layers``: one image → background + one layer per object (up to 20 layers)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from layerkit.cli import common
from layerkit.cli.common import MULTILAYER_CONFIG, HelpFormatter, InOrder, Progress, add_pipeline_args, parse_numbers
from layerkit.errors import PromptError
from layerkit.progress import ItemBar

EXAMPLES = """examples:
  layerkit layers photo.jpg --box 10,20,200,300 --box 220,40,400,380 -o stack.psd
  layerkit layers photo.jpg --object --box 10,20,200,300 --point 90,120 --point 15,25,0 --object --point 300,200 -o stack/
  layerkit layers photo.jpg --auto --max-layers 8 -o stack/
  layerkit layers photo.jpg --prompts objects.json --order given --merge 1-2 -o stack.ora
  layerkit layers photo.jpg --auto --multilayer /models/Qwen-Image-Layered --device cuda -o stack/

objects: each --box, --point, --mask and --text is one object. To give one object several
prompts, open a group with --object: every prompt flag up to the next --object belongs to it
(a negative point X,Y,0 only makes sense inside a group). Flags before the first --object are
objects of their own. --prompts FILE reads a JSON list of objects (or {"objects": [...]}) with
keys box/boxes, point/points, labels, mask (PNG path), text, name.

order: 'auto' finds the front-to-back order from the objects' mutual occlusion; 'given' takes
the first object as the front-most; or list the object numbers front-most first (0,2,1).
--max-layers counts the background (2..20). Objects where nothing is found are reported and
skipped; a repeated object is reported and skipped.

output: a folder gets layer_00.png (background) ... layer_NN.png (top) + layers.json; a .psd
or .ora path gets a layered document."""

PROMPT_FLAGS = ("box", "point", "mask", "text")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help="split an image into a background + one layer per object (up to 20)",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("image", help="input image (PNG, JPEG, WebP, TIFF, BMP)")
    g = p.add_argument_group("objects (each flag is one object unless grouped with --object)")
    g.add_argument("--object", dest="object", nargs=0, action=InOrder, help="start a group: the prompt flags after it form one object")
    g.add_argument("--box", dest="box", action=InOrder, metavar="X0,Y0,X1,Y1", help="box in pixels")
    g.add_argument("--point", dest="point", action=InOrder, metavar="X,Y[,LABEL]", help="point; LABEL 0 = not the object")
    g.add_argument("--mask", dest="mask", action=InOrder, metavar="PNG", help="mask image of the object (white on black)")
    g.add_argument("--text", dest="text", action=InOrder, metavar="PHRASE", help="phrase naming the object (needs a grounder)")
    g.add_argument("--prompts", default=None, metavar="JSON", help="objects from a JSON file (see below)")
    g.add_argument("--auto", action="store_true", help="no prompts: find the objects automatically")
    o = p.add_argument_group("layers")
    o.add_argument("--order", default="auto", help="auto, given, or object numbers front-most first (e.g. 2,0,1)")
    o.add_argument("--max-layers", type=int, default=20, help="most layers, background included (2..20)")
    o.add_argument("--merge", action="append", default=[], metavar="FIRST-LAST", help="merge adjacent stack layers (repeatable)")
    o.add_argument("--min-area", type=float, default=5e-4, help="alpha mass (fraction of the image) below which an object is empty")
    m = p.add_argument_group("multi-layer backend (with --auto)")
    m.add_argument("--multilayer", default=None, metavar="MODEL",
                   help="decompose with Qwen-Image-Layered from MODEL (local folder or cached hub id) instead of peeling")
    m.add_argument("--multilayer-layers", type=int, default=4, help="layers asked of the backend (background included)")
    m.add_argument("--steps", type=int, default=50, help="denoising steps of the backend")
    m.add_argument("--resolution", type=int, default=640, choices=(640, 1024), help="backend resolution bucket")
    p.add_argument("-o", "--output", required=True, help="output folder, .psd or .ora")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress or report")
    add_pipeline_args(p, MULTILAYER_CONFIG)
    p.set_defaults(func=run, in_order=[])


def parse_point(text: str) -> tuple[list[float], int]:
    """``"X,Y"`` or ``"X,Y,LABEL"`` → ``([x, y], label)``."""
    v = parse_numbers(text, (2, 3), "--point", "X,Y or X,Y,LABEL such as 250,260 or 30,30,0")
    if len(v) == 3 and v[2] not in (0, 1):
        raise PromptError(f"point label must be 0 or 1, got {v[2]:g}")
    return v[:2], int(v[2]) if len(v) == 3 else 1


def objects_from_items(items: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Command-line prompt flags (in order) → one record per object (see the epilog for the rules)."""
    objects: list[dict[str, Any]] = []
    group: dict[str, Any] | None = None
    for kind, value in items:
        if kind == "object":
            group = {}
            objects.append(group)
            continue
        target = group if group is not None else {}
        if group is None:
            objects.append(target)
        if kind == "box":
            target.setdefault("boxes", []).append(parse_numbers(value, (4,), "--box", "X0,Y0,X1,Y1 such as 120,40,380,500"))
        elif kind == "point":
            xy, lab = parse_point(value)
            target.setdefault("points", []).append(xy)
            target.setdefault("labels", []).append(lab)
        elif kind == "mask":
            if "mask" in target:
                raise PromptError("an --object group may hold one --mask; open another --object for the next")
            target["mask"] = value
        elif kind == "text":
            if "text" in target:
                raise PromptError("an --object group may hold one --text; open another --object for the next")
            target["text"] = value
    for i, obj in enumerate(objects):
        if not obj:
            raise PromptError(f"--object group {i} is empty; follow --object with --box/--point/--mask/--text")
        if "labels" in obj and not any(obj["labels"]) and len(obj) == 2:
            raise PromptError(f"object {i} has only negative points; a negative point (X,Y,0) must join an --object group "
                              "with a box, a positive point, a mask or a text")
    return objects


def read_prompt_file(path: str | Path) -> list[dict[str, Any]]:
    """Objects from a JSON file: a list of records, or ``{"objects": [...]}``.

    Raises:
        PromptError: unreadable or malformed file.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise PromptError(f"cannot read prompt file {str(p)!r}: {e}") from None
    objects = doc.get("objects") if isinstance(doc, dict) else doc
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise PromptError(f"{str(p)!r} must hold a list of objects or {{\"objects\": [...]}}, each a mapping")
    for o in objects:
        if isinstance(o.get("mask"), str) and not Path(o["mask"]).is_absolute():
            o["mask"] = str(p.parent / o["mask"])
    return objects


def prompts_from_records(records: Sequence[dict[str, Any]], max_pixels: int | None = None) -> tuple[list[Any], list[str]]:
    """Object records → ``(prompts, names)``.

    A record has any of ``box`` (``[x0, y0, x1, y1]``) or ``boxes``, ``point`` or ``points``
    with optional ``labels``, ``mask`` (PNG path or ``H×W`` array), ``text`` and ``name``;
    ``max_pixels`` bounds mask images (default: the image default).
    """
    from layerkit.io.image import load_mask
    from layerkit.types import Prompt

    prompts, names = [], []
    for i, r in enumerate(records):
        unknown = set(r) - {"box", "boxes", "point", "points", "labels", "mask", "text", "name", "box_xyxy", "point_xy"}
        if unknown:
            raise PromptError(f"object {i} has unknown keys {sorted(unknown)}; use box/boxes, point/points, labels, mask, text, name")
        boxes = r.get("boxes") or ([r["box"]] if "box" in r else None) or ([r["box_xyxy"]] if "box_xyxy" in r else None)
        points = r.get("points") or ([r["point"]] if "point" in r else None) or ([r["point_xy"]] if "point_xy" in r else None)
        mask = r.get("mask")
        if isinstance(mask, str):
            mask = load_mask(mask, max_pixels=max_pixels) if max_pixels else load_mask(mask)
        prompts.append(Prompt(points=points, labels=r.get("labels"), boxes=boxes, mask=mask, text=r.get("text")))
        names.append(str(r.get("name") or r.get("text") or f"object_{i + 1}"))
    return prompts, names


def parse_order(text: str) -> str | list[int]:
    if text in ("auto", "given"):
        return text
    try:
        return [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise PromptError(f"--order {text!r} must be auto, given or object numbers such as 2,0,1") from None


def parse_merge(text: str) -> tuple[int, int]:
    a, sep, b = text.partition("-")
    try:
        if not sep:
            raise ValueError
        return int(a), int(b)
    except ValueError:
        raise PromptError(f"--merge {text!r} must be FIRST-LAST stack indices such as 1-2") from None


def run(args: argparse.Namespace) -> int:
    from layerkit.io.atomic import check_output
    from layerkit.io.layers import save_stack
    from layerkit.pipelines.sequential import check_max_layers, peel_layers

    check_output(args.output, args.overwrite)  # fail before any long work
    check_max_layers(args.max_layers)
    records = objects_from_items(args.in_order)
    if args.prompts:
        records += read_prompt_file(args.prompts)
    if args.auto and records:
        raise PromptError("--auto finds the objects itself; drop --auto or the prompt flags")
    if not args.auto and not records:
        raise PromptError("no object given: add --box/--point/--mask/--text (or --prompts FILE), or --auto")
    if args.multilayer and not args.auto:
        raise PromptError("--multilayer decomposes without prompts; add --auto")
    prompts, names = prompts_from_records(records, common.mask_max_pixels(args))
    order, merge = parse_order(args.order), [parse_merge(m) for m in args.merge]
    pipe = common.build_pipeline(args)
    pipe.progress = Progress(enabled=not args.quiet)
    backend = None
    if args.multilayer:
        from layerkit.modules.multilayer.qwen_layered import QwenLayeredDecomposer

        backend = QwenLayeredDecomposer(args.multilayer, layers=args.multilayer_layers, steps=args.steps,
                                        resolution=args.resolution).to(pipe.settings.device)
        backend.manual_seed(pipe.settings.seed)
        backend.load()

    bar = ItemBar(len(prompts), "objects", enabled=not args.quiet, unit="object")

    def progress(done: int, total: int, message: str) -> None:
        name, _, status = message.partition(": ")
        bar.update(name, status, failed=not status.startswith("layer"))

    with bar:
        res = peel_layers(pipe, args.image, prompts or None, order=order, max_layers=args.max_layers,
                          names=names or None, merge=merge, min_area=args.min_area, backend=backend, progress=progress)
    for o in res.objects:
        if o.status != "layer":
            print(f"layerkit: warning: object {o.index} ({o.name}) is {o.status}: {o.detail}; skipped", file=sys.stderr)
    if not any(o.status == "layer" for o in res.objects):
        raise PromptError("no object was found in the image, so there is nothing to layer; "
                          + ("give prompts instead of --auto" if args.auto else "check the prompts"))
    save_stack(res.stack, args.output, overwrite=args.overwrite)
    if not args.quiet:
        print(json.dumps({"output": args.output, **res.to_dict()}), file=sys.stderr)
    print(args.output)
    return 0
