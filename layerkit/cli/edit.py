"""``layerkit edit``: edit a layer stack by compositing only (no model), save a stack or a flat image."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from layerkit.cli.common import HelpFormatter, InOrder, parse_numbers
from layerkit.errors import PromptError

EXAMPLES = """examples:
  layerkit edit stack/ --move 2:+40,-10 --scale 1:1.2 --recolor 2:hue=30 --duplicate 1:+120,0 --remove 3 -o edited.png
  layerkit edit stack.psd --rotate lamp:15 --reorder 1:-1 --hide 2 -o edited.psd
  layerkit edit stack/ --recolor 0:sat=0.5,bright=1.1 --merge 1-2 -o edited/

layers are named by index in the stack as loaded (0 = background, counting up to the top layer;
-1 = the top one) or by name; edits run in the order given, and an index keeps meaning the
layer it named when the stack was loaded (after --remove 1, "3" is still the old layer 3).

  --move L:DX,DY        shift by pixels (integers keep alpha bit-exact); "--move 1 80,0" works too
  --scale L:F[,FY]      scale about the layer's centre
  --rotate L:DEG        rotate counter-clockwise about the layer's centre
  --recolor L:hue=H,sat=S,bright=B   hue shift in degrees, saturation/brightness factors
  --duplicate L[:DX,DY] copy above the layer, moved
  --remove L / --hide L / --show L
  --reorder L:POS       new position bottom to top (1 .. top, -1 = top)
  --merge A-B           merge adjacent layers A..B into one

output: .png/.jpg/.webp/.tif gets the flat composite (PNG keeps transparency if any); .psd,
.ora or a folder gets the edited stack."""

FLAT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edit", help="move/scale/rotate/recolor/duplicate/remove/reorder/hide layers of a stack",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("stack", help="layer stack: folder with layers.json, .psd or .ora")
    for op, meta in (("move", "L:DX,DY"), ("scale", "L:F[,FY]"), ("rotate", "L:DEG"), ("recolor", "L:hue=H,sat=S,bright=B"),
                     ("duplicate", "L[:DX,DY]"), ("remove", "L"), ("reorder", "L:POS"), ("hide", "L"), ("show", "L"),
                     ("merge", "A-B")):
        valued = op not in ("remove", "hide", "show", "merge")
        p.add_argument(f"--{op}", dest=op, action=InOrder, metavar=meta, nargs="+" if valued else None,
                       help=f"{op} (repeatable; see below)" + ("; 'L ARGS' also works" if valued else ""))
    p.add_argument("-o", "--output", required=True, help="flat image (.png …) or stack (.psd, .ora, folder)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run, in_order=[])


def _ref(text: str) -> int | str:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        return t


def parse_edit(op: str, text: str | list[str]) -> Any:
    """One command-line edit (``op``, ``"L:ARGS"`` or ``["L", "ARGS"]``) → :class:`~layerkit.editing.Edit`.

    Raises:
        EditError: malformed value.
    """
    from layerkit.editing import Edit, EditError

    if isinstance(text, (list, tuple)):  # "--move 1 80,0" is "--move 1:80,0"
        if len(text) > 2 or (len(text) == 2 and ":" in text[0]):
            raise EditError(f"--{op} got {len(text)} values {' '.join(text)!r}; give L:ARGS or L ARGS "
                            "(and the stack before the options)")
        text = ":".join(text)
    target, sep, rest = text.partition(":")
    if not target.strip():
        raise EditError(f"--{op} {text!r} names no layer; start with a layer index or name")
    ref = _ref(target)

    def nums(n: tuple[int, ...], example: str) -> list[float]:
        try:
            return parse_numbers(rest, n, f"--{op}", example)
        except PromptError as e:
            raise EditError(str(e).replace(repr(rest), repr(text), 1)) from None

    if op == "merge":
        a, dash, b = text.partition("-")
        if not dash or not a.strip() or not b.strip():
            raise EditError(f"--merge {text!r} must be A-B (adjacent layers, lower first), e.g. 1-2")
        return Edit("merge", _ref(a), {"last": _ref(b)})
    if op in ("remove", "hide", "show"):
        if sep:
            raise EditError(f"--{op} takes a layer only (index or name), got {text!r}")
        return Edit(op, ref)
    if op == "duplicate":
        dx, dy = nums((2,), "L:DX,DY such as 1:+120,0") if sep else (0.0, 0.0)
        return Edit(op, ref, {"dx": dx, "dy": dy})
    if not sep:
        raise EditError(f"--{op} {text!r} needs a value after ':' (see layerkit edit --help)")
    if op == "move":
        dx, dy = nums((2,), "L:DX,DY such as 2:+40,-10")
        return Edit(op, ref, {"dx": dx, "dy": dy})
    if op == "scale":
        f = nums((1, 2), "L:F or L:FX,FY such as 1:1.2")
        return Edit(op, ref, {"factor": f[0] if len(f) == 1 else (f[0], f[1])})
    if op == "rotate":
        return Edit(op, ref, {"degrees": nums((1,), "L:DEG such as 1:15")[0]})
    if op == "reorder":
        pos = nums((1,), "L:POS such as 2:1")[0]
        if not pos.is_integer():
            raise EditError(f"--reorder {text!r}: the position must be a whole number such as 2:1")
        return Edit(op, ref, {"position": int(pos)})
    if op == "recolor":
        keys = {"hue": "hue", "h": "hue", "sat": "saturation", "saturation": "saturation", "s": "saturation",
                "bright": "brightness", "brightness": "brightness", "b": "brightness", "v": "brightness"}
        args: dict[str, float] = {}
        for part in rest.split(","):
            k, eq, v = part.partition("=")
            if not eq or k.strip().lower() not in keys:
                raise EditError(f"--recolor {text!r}: use L:hue=DEG,sat=F,bright=F (any of them), e.g. 2:hue=30")
            try:
                args[keys[k.strip().lower()]] = float(v)
            except ValueError:
                raise EditError(f"--recolor {text!r}: {v!r} is not a number") from None
            if not math.isfinite(args[keys[k.strip().lower()]]):
                raise EditError(f"--recolor {text!r}: {v.strip()!r} is not a finite number")
        return Edit(op, ref, args)
    raise EditError(f"unknown edit --{op}")


def run(args: argparse.Namespace) -> int:
    from layerkit.editing import EditError, apply_edits
    from layerkit.io.atomic import check_output
    from layerkit.io.image import save_image
    from layerkit.io.layers import save_stack
    from layerkit.types import LayerStack

    check_output(args.output, args.overwrite)
    if not args.in_order:
        raise EditError("no edit given; add --move/--scale/--rotate/--recolor/--duplicate/--remove/--reorder/--hide/--show/--merge")
    edits = [parse_edit(op, text) for op, text in args.in_order]
    stack = apply_edits(LayerStack.load(args.stack), edits)
    if Path(args.output).suffix.lower() in FLAT_SUFFIXES:
        save_image(stack.composite(), args.output, overwrite=args.overwrite)
    else:
        save_stack(stack, args.output, overwrite=args.overwrite)
    print(f"{len(edits)} edit(s), {len(stack)} layers: {', '.join(stack.names)}", file=sys.stderr)
    print(args.output)
    return 0
