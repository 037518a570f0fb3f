"""``layerkit app``: an interactive Gradio page — click an object, refine it, download the layers.

Gradio is an optional extra (``pip install 'layerkit[app]'``); :func:`require_gradio` says so
when it is missing. The click logic (:mod:`layerkit.app.interactive`, :mod:`layerkit.app.session`)
and the benchmark protocol (:mod:`layerkit.app.noc`) do not need Gradio.
"""

from __future__ import annotations

from typing import Any

from layerkit.errors import LayerkitError


class MissingExtraError(LayerkitError):
    """An optional dependency group is not installed."""


def require_gradio() -> Any:
    """Import and return ``gradio``, or raise one line naming the extra to install."""
    try:
        import gradio
    except ImportError:
        raise MissingExtraError("the app needs Gradio, which is not installed; install the extra: "
                                "pip install 'layerkit[app]' (or make install)") from None
    return gradio


def build_app(pipe: Any, warm_up: bool = True) -> Any:
    """The Gradio page on ``pipe`` (see :func:`layerkit.app.ui.build_app`)."""
    require_gradio()
    from layerkit.app.ui import build_app as _build

    return _build(pipe, warm_up=warm_up)
