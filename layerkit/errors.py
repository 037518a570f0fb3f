"""Exceptions raised by layerkit.

Every error a user can cause (bad file, bad prompt, bad config, missing weights, unwritable
output) is a :class:`LayerkitError` subclass whose message says what was wrong and how to fix
it, in one line. The command line prints that line and exits with code 2.
"""

from __future__ import annotations


class LayerkitError(Exception):
    """Base class of every user-facing layerkit error."""


class InputImageError(LayerkitError):
    """The input image is missing, unreadable, truncated, too small or too large."""


class PromptError(LayerkitError):
    """A prompt (points, boxes, mask, text) does not fit the image or the configured stages."""


class ConfigError(LayerkitError):
    """A config file, key, value or stage name is invalid."""


class MissingModelError(LayerkitError):
    """A learned stage's weights cannot be found locally and the hub is not reachable."""


class OutputError(LayerkitError):
    """The output path exists (without overwrite), is unwritable or has an unknown format."""


class DataError(LayerkitError):
    """An evaluation or training data folder is missing files or malformed."""


class EditError(LayerkitError):
    """An edit names a missing layer or cannot be applied to it."""


def one_line_errors(prog: str):  # noqa: ANN201 - a decorator
    """Decorator for a script's ``main(...) -> int``: a :class:`LayerkitError` is printed as one line
    (``prog: message``) on stderr and ``main`` returns 2, as the command line does."""
    import functools
    import sys

    def wrap(main):  # noqa: ANN001, ANN202
        @functools.wraps(main)
        def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            try:
                return main(*args, **kwargs)
            except LayerkitError as e:
                print(f"{prog}: {e}", file=sys.stderr)
                return 2
        return run
    return wrap
