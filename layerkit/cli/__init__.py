"""The ``layerkit`` command line.

Each subcommand is one module of this package with ``add_parser(subparsers)`` and
``run(args) -> int``; :data:`SUBCOMMANDS` lists them. Every :class:`~layerkit.errors.LayerkitError`
is printed as one line (``layerkit: error: ...``) and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

#: subcommand → module (imported lazily, so ``layerkit --help`` stays fast)
SUBCOMMANDS: dict[str, str] = {
    "decompose": "layerkit.cli.decompose",
    "layers": "layerkit.cli.layers",
    "edit": "layerkit.cli.edit",
    "generate": "layerkit.cli.generate",
    "eval": "layerkit.cli.eval",
    "eval-matting": "layerkit.cli.eval_matting",
    "eval-layers": "layerkit.cli.eval_layers",
    "bench": "layerkit.cli.bench",
    "make-dataset": "layerkit.cli.make_dataset",
    "train": "layerkit.cli.train",
    "batch": "layerkit.cli.batch",
    "app": "layerkit.cli.app",
}

EPILOG = """examples:
  layerkit decompose photo.jpg --box 120,40,380,500 -o out/
  layerkit decompose photo.jpg --point 250,260 -o out.psd --set trimapper.band=12
  layerkit eval /tmp/dev30 --config classical -o report/
run 'layerkit COMMAND --help' for the options of one command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerkit", description="Split a picture into editable RGBA layers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from layerkit import __version__

    parser.add_argument("--version", action="version", version=f"layerkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue  # subcommand not part of this build
            raise
        mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``layerkit`` console script; returns the exit code."""
    from layerkit.errors import LayerkitError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from layerkit import progress
    from layerkit.cli.common import exit_code_of_interrupt, stop_signals

    progress.set_quiet(bool(getattr(args, "quiet", False)))  # every bar of the run, diffusers' and Lightning's too
    try:
        with stop_signals():  # SIGTERM/SIGHUP stop a run like Ctrl-C: temporary outputs removed
            return int(args.func(args) or 0)
    except LayerkitError as e:
        progress.clear_bars()  # the error line starts on a clean line
        print(f"layerkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"layerkit: interrupted ({e or 'SIGINT'})", file=sys.stderr)
        return exit_code_of_interrupt(e)
    finally:
        progress.set_quiet(False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
