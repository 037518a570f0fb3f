"""layerkit as ComfyUI custom nodes: Decompose, Layers, Save PSD/ORA.

Install: ``pip install layerkit`` into ComfyUI's Python, then link this folder into
``ComfyUI/custom_nodes/`` (docs/app.md); ComfyUI reads :data:`NODE_CLASS_MAPPINGS`.
"""

from layerkit.integrations.comfyui.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
