"""Integrations of layerkit into other tools (ComfyUI custom nodes)."""
