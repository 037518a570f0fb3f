"""Multi-layer backends: one call turns an image into a whole layer stack.

Interface (see :func:`layerkit.pipelines.sequential.backend_layers`)::

    backend(image: H×W×3 float32 in [0, 1], max_layers: int | None = None) -> LayerStack

The returned stack is bottom → top, canvas-sized, with an opaque background at index 0.
Backends import their heavy dependencies lazily and offer ``missing_weights()`` and ``to(device)``
like the single-object stages.

================  ==========================================================================
backend           class
================  ==========================================================================
``qwen_layered``  :class:`layerkit.modules.multilayer.qwen_layered.QwenLayeredDecomposer`
================  ==========================================================================
"""
