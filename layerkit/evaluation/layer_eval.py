"""Running multi-layer evaluation: predictions from a pipeline or a folder, scored per merge level.

The data set is a ``layerkit make-dataset`` folder (:mod:`layerkit.evaluation.dataset`). Two
scoring protocols: ``layerd`` (default; LayerD's own, :mod:`layerkit.evaluation.layerd_protocol`,
so figures compare with published ones) and ``layerkit`` (:mod:`layerkit.evaluation.multilayer`:
exact re-alignment per candidate merge, float compositing, every level reported).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerkit.errors import ConfigError, DataError
from layerkit.evaluation.dataset import LayerSample
from layerkit.evaluation.layerd_protocol import aggregate_layerd, evaluate_stacks_layerd, too_few_layers
from layerkit.evaluation.multilayer import aggregate_levels, at_level, evaluate_stacks
from layerkit.evaluation.runner import EtaProgress, peak_rss_mb, run_items
from layerkit.types import LayerStack

Predictor = Callable[[LayerSample], LayerStack]
PROTOCOLS = ("layerd", "layerkit")


def check_protocol(protocol: str) -> None:
    """Raise :class:`ConfigError` for a protocol name other than :data:`PROTOCOLS`."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown scoring protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def score_stacks(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], max_merges: int = 5, group: bool = True,
                 protocol: str = "layerd") -> list[dict[str, Any]]:
    """Per-level scores of two stacks (bottom → top ``H×W×4`` RGBA layers) under ``protocol``."""
    check_protocol(protocol)
    if protocol == "layerd":
        return evaluate_stacks_layerd(pred, gt, max_merges=max_merges, group=group)
    return evaluate_stacks(pred, gt, max_merges=max_merges, group=group)


def aggregate(per_sample: Sequence[Sequence[dict[str, Any]]], max_merges: int = 5,
              protocol: str = "layerd") -> list[dict[str, Any]]:
    """Mean per merge level: LayerD's (levels up to the deepest reached) or layerkit's (0…``max_merges``)."""
    check_protocol(protocol)
    return aggregate_layerd(per_sample) if protocol == "layerd" else aggregate_levels(per_sample, max_merges)


def check_multilayer(pipe: Any) -> None:
    """Raise a clear error when the build has no multi-layer decomposition.

    Raises:
        ConfigError: ``layerkit.pipelines.sequential`` is missing or the pipeline has no ``layers``.
    """
    if importlib.util.find_spec("layerkit.pipelines.sequential") is None or not callable(getattr(pipe, "layers", None)):
        raise ConfigError("multi-layer decomposition is not available in this build (layerkit.pipelines.sequential, "
                          "Pipeline.layers); score precomputed stacks with --pred-dir DIR instead")


def pipeline_predictor(pipe: Any, prompt_kind: str = "box", shuffle_seed: int | None = None,
                       gt_order: bool = False) -> Predictor:
    """Predict a sample's stack with ``pipe.layers(composite, prompts)``.

    Args:
        pipe: a pipeline with ``layers(image, prompts, **kw) -> LayerStack``.
        prompt_kind: ``box``, ``point`` or ``box+point``.
        shuffle_seed: give the prompts in a seeded random order instead of bottom → top, so the
            depth order must be inferred rather than read from the prompt order.
        gt_order: give the true depth order (prompts front-most first with ``order="given"``),
            which separates ordering errors from decomposition errors.
    """
    check_multilayer(pipe)

    def predict(sample: LayerSample) -> LayerStack:
        prompts = sample.prompts(prompt_kind)
        if gt_order:
            return pipe.layers(str(sample.path / "composite.png"), prompts[::-1], order="given")
        if shuffle_seed is not None:
            order = np.random.default_rng([shuffle_seed, int(sample.id) if sample.id.isdigit() else 0]).permutation(len(prompts))
            prompts = [prompts[i] for i in order]
        return pipe.layers(str(sample.path / "composite.png"), prompts)

    return predict


def folder_predictor(pred_dir: str | Path) -> Predictor:
    """Read precomputed stacks: ``PRED_DIR/<sample id>`` (a layer folder), ``.psd`` or ``.ora``.

    Raises:
        DataError: ``pred_dir`` is not a folder.
    """
    root = Path(pred_dir)
    if not root.is_dir():
        raise DataError(f"prediction folder {str(root)!r} does not exist or is not a folder")

    def predict(sample: LayerSample) -> LayerStack:
        for cand in (root / sample.id, root / f"{sample.id}.psd", root / f"{sample.id}.ora"):
            if cand.exists():
                return LayerStack.load(cand)
        raise DataError(f"no prediction for sample {sample.id} in {str(root)!r} (expected {sample.id}/, .psd or .ora)")

    return predict


def _layers(stack: LayerStack) -> list[np.ndarray]:
    return [layer.rgba for layer in stack if layer.visible]


def evaluate_layer_sample(predict: Predictor, sample: LayerSample, max_merges: int = 5, group: bool = True,
                          protocol: str = "layerd") -> dict[str, Any]:
    """Predict and score one sample.

    Returns:
        ``id``, ``n_gt``, ``n_pred`` (visible layers, before grouping), ``seconds`` (prediction),
        ``rss_mb``, ``levels`` (one dict per reached merge level) and flat ``cost@k``,
        ``rgb_l1@k``, ``alpha_iou@k`` for ``k`` = 0 and ``max_merges``. Under the ``layerd``
        protocol a stack with fewer than 2 layers is not scored: the record has ``skipped``
        (the reason) and empty ``levels`` instead of scores.
    """
    gt = sample.ground_truth()
    t0 = time.perf_counter()
    pred = predict(sample)
    seconds = time.perf_counter() - t0
    if pred.size != gt.size:
        raise DataError(f"predicted stack is {pred.size} but the ground truth is {gt.size}")
    p_layers, g_layers = _layers(pred), _layers(gt)
    rec: dict[str, Any] = {"id": sample.id, "n_gt": len(g_layers), "n_pred": len(p_layers), "seconds": seconds,
                           "rss_mb": peak_rss_mb()}
    skip = too_few_layers(len(p_layers), len(g_layers)) if protocol == "layerd" else None
    if skip is not None:
        return dict(rec, skipped=skip, levels=[])
    levels = score_stacks(p_layers, g_layers, max_merges, group, protocol)
    rec["merges_used"] = len(levels) - 1
    for k in sorted({0, max_merges}):
        lv = at_level(levels, k)
        rec.update({f"cost@{k}": lv["cost"], f"rgb_l1@{k}": lv["rgb_l1"], f"alpha_iou@{k}": lv["alpha_iou"]})
    rec["levels"] = levels
    return rec


def evaluate_layer_samples(predict: Predictor, samples: Sequence[LayerSample], max_merges: int = 5, group: bool = True,
                           progress: EtaProgress | None = None, protocol: str = "layerd") -> list[dict[str, Any]]:
    """Evaluate every sample; a failing one is recorded with its ``error`` and the run goes on."""
    check_protocol(protocol)
    return run_items(samples, lambda s: evaluate_layer_sample(predict, s, max_merges, group, protocol), lambda s: s.id,
                     progress, _describe)


def _describe(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"skipped: {r['skipped']}"
    return f"ok {r['seconds']:.1f} s, cost@0 {r['cost@0']:.3f}, IoU@0 {r['alpha_iou@0']:.3f}"


def sample_columns(max_merges: int) -> list[tuple[str, str]]:
    """Per-sample table columns for a given ``max_merges``."""
    cols = [("id", "sample"), ("n_gt", "GT layers"), ("n_pred", "pred layers")]
    for k in sorted({0, max_merges}):
        cols += [(f"cost@{k}", f"cost @{k}"), (f"rgb_l1@{k}", f"RGB L1 @{k}"), (f"alpha_iou@{k}", f"α IoU @{k}")]
    return cols + [("merges_used", "merges used"), ("seconds", "s/sample"), ("error", "error / skipped")]


LEVEL_COLUMNS = [("merges", "max merges"), ("samples", "samples"), ("cost", "cost (L1+1−IoU)/2"), ("rgb_l1", "RGB L1"),
                 ("alpha_iou", "α soft IoU"), ("n_pred", "pred layers"), ("n_gt", "GT layers")]
LAYERD_LEVEL_COLUMNS = LEVEL_COLUMNS[:2] + [("reached", "reached it"), ("avg_merges", "mean merges")] + LEVEL_COLUMNS[2:]


def level_columns(protocol: str) -> list[tuple[str, str]]:
    """Columns of the per-level table for ``protocol``."""
    return LAYERD_LEVEL_COLUMNS if protocol == "layerd" else LEVEL_COLUMNS
