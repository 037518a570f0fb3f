"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from layerkit.errors import PromptError
from layerkit.progress import StageProgress


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM (or SIGHUP), so a run stops as on Ctrl-C: every
    ``atomic_path`` removes its temporary output and the old output stays intact."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (restored afterwards).

    Outside the main thread (signals cannot be caught there) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def exit_code_of_interrupt(e: KeyboardInterrupt) -> int:
    """Shell convention: 128 + signal number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + (e.signum if isinstance(e, Terminated) else signal.SIGINT)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps example blocks as written and shows defaults."""


class InOrder(argparse.Action):
    """Appends ``(option dest, value)`` to ``namespace.in_order``, keeping the command-line order
    across different options (``layerkit edit``'s operations, ``layerkit layers``' prompt flags).
    Commands using it set ``in_order=[]`` as a default."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        namespace.in_order = [*(getattr(namespace, "in_order", None) or []), (self.dest, values)]


MULTILAYER_CONFIG = "classical+peel"
"""Default config of the multi-layer commands: the ``peel`` overlay drops the GrabCut ``core``
initialisation, which assumes an object centred in its box (a visible-part box is not)."""


def add_pipeline_args(p: argparse.ArgumentParser, default_config: str = "classical") -> None:
    """``--config``, ``--set``, ``--device``, ``--seed``, ``--max-pixels``."""
    g = p.add_argument_group("pipeline")
    g.add_argument("--config", default=default_config,
                   help="shipped config name or YAML path, optionally +OVERLAY (e.g. classical+hfa)")
    g.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                   help="dotted config overrides, e.g. matter.backend=vitmatte trimapper.band=12 "
                        "(put positional arguments before --set)")
    g.add_argument("--device", default=None, help="torch device for learned stages: cpu, cuda, cuda:1, auto")
    g.add_argument("--seed", type=int, default=None, help="seed for stochastic stages")
    g.add_argument("--max-pixels", type=int, default=None,
                   help="refuse larger images (decompression-bomb guard; default 100000000)")


def add_report_output_args(p: argparse.ArgumentParser) -> None:
    """``-o/--output`` (a folder written atomically), ``--overwrite``, ``--quiet`` of report commands."""
    p.add_argument("-o", "--output", required=True, help="output folder (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def pipeline_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items plus the ``pipeline.*`` overrides of ``--device``, ``--seed``, ``--max-pixels``."""
    items = list(args.set)
    for flag, key in (("device", "pipeline.device"), ("seed", "pipeline.seed"), ("max_pixels", "pipeline.max_pixels")):
        if getattr(args, flag, None) is not None:
            items.append(f"{key}={getattr(args, flag)}")
    return items


def build_pipeline(args: argparse.Namespace, spec: str | None = None, check_weights: bool = True,
                   grounder: bool = False) -> Any:
    """Build the pipeline of ``spec`` (default ``--config``; ``NAME+OVERLAY`` specs allowed) with
    ``--set``/``--device``/``--seed``/``--max-pixels``.

    With ``check_weights``, every model the run needs is checked at once, in one message: those
    of :meth:`~layerkit.pipelines.decompose.Pipeline.eager_roles`, plus the grounder's when the
    command has a ``--text`` prompt or ``grounder`` is set (the app, which offers phrases)."""
    from layerkit.pipelines.decompose import Pipeline

    pipe = Pipeline.from_config(spec or args.config, pipeline_overrides(args), check_weights=False)
    if check_weights:
        text = getattr(args, "text", None) or any(dest == "text" for dest, _ in getattr(args, "in_order", None) or [])
        extra = ("grounder",) if (grounder or text) and pipe.grounder is not None else ()
        pipe.check_weights(pipe.eager_roles() + extra)
    return pipe


def parse_numbers(text: str, n: tuple[int, ...], what: str, example: str) -> list[float]:
    """``"1,2,3,4"`` → ``[1., 2., 3., 4.]``; ``n`` lists the accepted counts."""
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        vals = []
    if len(vals) not in n or not all(math.isfinite(v) for v in vals):
        finite = " (finite numbers: no nan or inf)" if vals and not all(math.isfinite(v) for v in vals) else ""
        raise PromptError(f"{what} {text!r} is not valid; expected {example}{finite}")
    return vals


def mask_max_pixels(args: argparse.Namespace) -> int:
    """Pixel limit of a ``--mask`` image: ``--max-pixels`` when given, else the image default."""
    from layerkit.io.image import DEFAULT_MAX_PIXELS

    return getattr(args, "max_pixels", None) or DEFAULT_MAX_PIXELS


def add_prompt_args(p: argparse.ArgumentParser) -> None:
    """``--box``, ``--point``, ``--mask``, ``--text``."""
    g = p.add_argument_group("prompt (any mix)")
    g.add_argument("--box", action="append", default=[], metavar="X0,Y0,X1,Y1", help="box in pixels (repeatable)")
    g.add_argument("--point", action="append", default=[], metavar="X,Y[,LABEL]",
                   help="point in pixels; LABEL 1 = object (default), 0 = not object (repeatable)")
    g.add_argument("--mask", default=None, metavar="PNG", help="mask image of the object (white on black), image size")
    g.add_argument("--text", default=None, help="phrase naming the object (needs a grounding stage)")


def prompt_from_args(args: argparse.Namespace) -> Any:
    """Build a :class:`~layerkit.types.Prompt` from ``--box/--point/--mask/--text``."""
    from layerkit.io.image import load_mask
    from layerkit.types import Prompt

    boxes = [parse_numbers(b, (4,), "--box", "X0,Y0,X1,Y1 such as 120,40,380,500") for b in args.box]
    pts = [parse_numbers(p, (2, 3), "--point", "X,Y or X,Y,LABEL such as 250,260 or 30,30,0") for p in args.point]
    for p in pts:
        if len(p) == 3 and p[2] not in (0, 1):
            raise PromptError(f"point label must be 0 or 1, got {p[2]:g}")
    mask = load_mask(args.mask, max_pixels=mask_max_pixels(args)) if args.mask else None
    if not (boxes or pts or mask is not None or args.text):
        raise PromptError("no prompt given: add --box X0,Y0,X1,Y1, --point X,Y, --mask FILE or --text PHRASE")
    return Prompt(points=[p[:2] for p in pts] or None, labels=[int(p[2]) if len(p) == 3 else 1 for p in pts] or None,
                  boxes=boxes or None, mask=mask, text=args.text)


#: the pipeline-stage progress display (tqdm), see :mod:`layerkit.progress`
Progress = StageProgress


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
