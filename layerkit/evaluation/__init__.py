"""Evaluation: metrics, benchmark runs and reports.

Modules:

* :mod:`~layerkit.evaluation.metrics` — alpha (SAD, MSE, gradient, connectivity, soft IoU),
  colour and PSNR metrics, as numpy functions;
* :mod:`~layerkit.evaluation.composites` — synthetic composites with exact GT (``layerkit eval``);
* :mod:`~layerkit.evaluation.matting` — real photos with GT mattes and trimaps (``eval-matting``);
* :mod:`~layerkit.evaluation.layerd_protocol` — LayerD's exact stack evaluation (``eval-layers`` default);
* :mod:`~layerkit.evaluation.multilayer` — layerkit's own stack comparison (``--protocol layerkit``) and the
  grouping and DTW both protocols use;
* :mod:`~layerkit.evaluation.layer_eval` — running ``eval-layers``;
* :mod:`~layerkit.evaluation.dataset` — synthetic multi-layer GT (``make-dataset``);
* :mod:`~layerkit.evaluation.bench` — config specs with overlays, several configs in one run;
* :mod:`~layerkit.evaluation.report`, :mod:`~layerkit.evaluation.visuals` — HTML report, plots;
* :mod:`~layerkit.evaluation.runner` — progress with ETA, memory, aggregation, atomic output.

Heavy imports (matplotlib, the pipeline) happen inside the functions that need them.
"""
