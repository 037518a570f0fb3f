"""layerkit: split a picture into editable RGBA layers.

>>> from layerkit import Pipeline, Prompt
>>> pipe = Pipeline.from_config("classical")
>>> res = pipe("photo.jpg", Prompt(boxes=[[120, 40, 380, 500]]))
>>> res.layers.save("out.psd")

Heavy modules (torch, transformers, diffusers) are imported only when a stage needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Pipeline": "layerkit.pipelines.decompose",
    "Prompt": "layerkit.types",
    "Layer": "layerkit.types",
    "LayerStack": "layerkit.types",
    "DecompositionResult": "layerkit.types",
    "LayerkitError": "layerkit.errors",
    "load_image": "layerkit.io.image",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from layerkit.errors import LayerkitError
    from layerkit.io.image import load_image
    from layerkit.pipelines.decompose import Pipeline
    from layerkit.types import DecompositionResult, Layer, LayerStack, Prompt


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'layerkit' has no attribute {name!r}")
