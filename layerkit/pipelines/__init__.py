"""Pipelines: wiring of stages. :class:`~layerkit.pipelines.decompose.Pipeline` is the entry point."""

from layerkit.pipelines.decompose import Pipeline

__all__ = ["Pipeline"]
