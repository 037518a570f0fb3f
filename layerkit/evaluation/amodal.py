"""Complete-layer (amodal) metrics: how well each layer's visible part is kept and its hidden part completed.

A predicted stack and a ground-truth stack (bottom → top, ``H×W×4`` straight RGBA, index 0 the
background) are compared layer by layer (``match[k]`` is the predicted layer of GT layer ``k``;
default: the same index). For GT object layer ``k`` the GT *cover* of the layers above it is
``C_k = 1 − Π_{j>k}(1 − α_j)`` and

* the **visible part** is ``V_k = {α_k > 0, C_k < 0.5}``, the **hidden part** ``H_k = {α_k > 0,
  C_k ≥ 0.5}``, the **occluded area** ``R_k = {C_k ≥ 0.5}`` (where the objects above it are);
* ``visible_psnr``: PSNR (dB) of premultiplied RGBA (``α·RGB`` and ``α``) over ``V_k``;
* ``hidden_l1`` / ``hidden_psnr``: mean ``|ΔRGB|`` / PSNR of the layer's stored straight RGB over
  ``H_k`` (layerkit stores RGB 0 where ``α = 0``, so a hidden part left out costs its full
  colour); ``hidden_l1_premul``: the same on ``α·RGB`` (a filled colour under a missing alpha
  earns nothing);
* ``iou_occ``: COCOA's occluded-region amodal IoU, ``|P ∩ G ∩ R_k| / |(P ∪ G) ∩ R_k|`` with
  ``P = pred α > 0.5``, ``G = GT α > 0.5`` (Zhu et al., "Semantic Amodal Segmentation", CVPR
  2017; the mIoU_occ of pix2gestalt / RefLayer);
* ``soft_iou``: alpha soft IoU ``Σ min / Σ max`` of the whole layer; ``layer_l1``: mean
  ``|ΔRGB|`` over the GT ``α > 0`` (the LayerD pair score);
* per stack, ``recompose_psnr``: PSNR of the predicted stack's composite against the image.

Layers without a hidden part give NaN for the hidden scores and are left out of the means.
The paper's HPA score and Pass-rate@K need a vision-language judge and human-preference
calibration that cannot run here; they are not computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from layerkit.evaluation.metrics import soft_iou

KEYS = ("visible_psnr", "hidden_l1", "hidden_psnr", "hidden_l1_premul", "iou_occ", "soft_iou", "layer_l1")


def covers(alphas: Sequence[np.ndarray]) -> list[np.ndarray]:
    """GT cover ``C_k = 1 − Π_{j>k}(1 − α_j)`` of every layer of a bottom → top list of alphas."""
    out: list[np.ndarray] = []
    transmit = np.ones_like(np.asarray(alphas[0], np.float64))
    for a in reversed(alphas):
        out.append(1.0 - transmit)
        transmit = transmit * (1.0 - np.asarray(a, np.float64))
    return out[::-1]


def _psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else float(10.0 * np.log10(1.0 / mse))


def layer_scores(pred: np.ndarray, gt: np.ndarray, cover: np.ndarray) -> dict[str, float]:
    """The per-layer scores of the module docstring for one ``H×W×4`` predicted and GT layer.

    Args:
        pred: predicted straight RGBA in ``[0, 1]``.
        gt: GT straight RGBA, same size.
        cover: ``H×W`` GT cover of the layers above the GT layer (:func:`covers`).
    """
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 4:
        raise ValueError(f"layers must be two H×W×4 arrays of one size, got {pred.shape} and {gt.shape}")
    pred, gt = pred.astype(np.float64), gt.astype(np.float64)
    ga, pa = gt[..., 3], pred[..., 3]
    vis, hid, occ = (ga > 0) & (cover < 0.5), (ga > 0) & (cover >= 0.5), cover >= 0.5
    nan = float("nan")
    out = {k: nan for k in KEYS}
    pm_p = np.concatenate([pred[..., :3] * pa[..., None], pa[..., None]], axis=2)
    pm_g = np.concatenate([gt[..., :3] * ga[..., None], ga[..., None]], axis=2)
    if vis.any():
        out["visible_psnr"] = _psnr(float(((pm_p[vis] - pm_g[vis]) ** 2).mean()))
    if hid.any():
        d = pred[..., :3][hid] - gt[..., :3][hid]
        out["hidden_l1"] = float(np.abs(d).mean())
        out["hidden_psnr"] = _psnr(float((d ** 2).mean()))
        out["hidden_l1_premul"] = float(np.abs(pm_p[..., :3][hid] - pm_g[..., :3][hid]).mean())
    p, g = (pa > 0.5) & occ, (ga > 0.5) & occ
    union = float((p | g).sum())
    if union > 0:
        out["iou_occ"] = float((p & g).sum()) / union
    out["soft_iou"] = soft_iou(pa, ga, empty=0.0)
    if (ga > 0).any():
        out["layer_l1"] = float(np.abs(pred[..., :3][ga > 0] - gt[..., :3][ga > 0]).mean())
    return out


def evaluate_complete(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], image: np.ndarray | None = None,
                      match: Sequence[int | None] | None = None) -> dict[str, Any]:
    """Score a predicted stack against a GT stack with complete (hidden-part) layers.

    Args:
        pred: predicted layers, ``H×W×4`` straight RGBA, bottom → top.
        gt: GT layers, same size, bottom → top (index 0 the background).
        image: the ``H×W×3`` input; enables ``recompose_psnr``.
        match: ``match[k]`` = index in ``pred`` of GT layer ``k`` (``None``: not found, scored
            as an empty layer); default the same index.

    Returns:
        ``{"layers": [per GT object layer scores, bottom → top], "mean": {key: mean}, "recompose_psnr": dB}``.
    """
    if not len(pred) or not len(gt):
        raise ValueError("both stacks need at least one layer")
    if pred[0].shape != gt[0].shape:
        raise ValueError(f"predicted layers are {pred[0].shape} but GT layers are {gt[0].shape}; stacks must share the canvas")
    match = list(range(len(gt))) if match is None else list(match)
    if len(match) != len(gt):
        raise ValueError(f"match lists {len(match)} entries for {len(gt)} GT layers")
    cov = covers([g[..., 3] for g in gt])
    rows = []
    for k in range(1, len(gt)):
        j = match[k]
        p = np.zeros_like(gt[k]) if j is None or j >= len(pred) else pred[j]
        rows.append(dict(layer_scores(p, gt[k], cov[k]), layer=k))
    out: dict[str, Any] = {"layers": rows, "mean": mean_scores(rows)}
    if image is not None:
        from layerkit.evaluation.multilayer import merge

        comp = merge(list(pred))[..., :3]
        out["recompose_psnr"] = _psnr(float(((comp.astype(np.float64) - image.astype(np.float64)) ** 2).mean()))
    return out


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each of :data:`KEYS` over rows, NaN (and infinite PSNR) entries left out."""
    out = {}
    for key in KEYS:
        vals = [float(r[key]) for r in rows if np.isfinite(r.get(key, float("nan")))]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out
