"""Automatic multi-layer decomposition: find the objects, then peel them.

Without weights (the classical config), object candidates come from **geodesic saliency** on a
superpixel graph: the image is cut into SLIC superpixels (Lab colour); a superpixel's saliency
is its geodesic colour distance to the image border (the cheapest path through neighbouring
superpixels, each step costing its Lab difference above a texture tolerance). Background is
reachable from the border through similar colours; an object is cut off by its contour.
Connected salient superpixels form a candidate; its mask (plus an interior point, so that
GrabCut refines it) is the prompt. The most salient candidate is peeled, candidates are
recomputed on the completed background, and the loop stops when nothing salient is left or the
layer cap is reached.

With a grounding stage configured, generic phrases are grounded instead and every detection is
a box prompt; a segmenter that offers ``automatic_masks(image) -> list[H×W bool]`` (SAM's
automatic mask generator) is used the same way. Both then go through prompted peeling with the
occlusion order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from layerkit.pipelines.ordering import Box, box_iou
from layerkit.pipelines.sequential import LayersResult, ObjectReport, Peeler, ProgressFn, peel_layers
from layerkit.types import Prompt, alpha_bbox

#: phrases grounded when a grounder is configured
GENERIC_PHRASES = "object . person . animal . thing ."


@dataclass
class Candidate:
    """An object found without a prompt.

    Attributes:
        mask: ``H×W`` bool at the image's size.
        box: ``(x0, y0, x1, y1)`` of the mask, exclusive ends.
        score: ranking score (saliency × √area); higher first.
        contrast: mean geodesic Lab distance of the object to the border (ΔE units).
    """

    mask: np.ndarray
    box: Box
    score: float
    contrast: float

    def prompt(self) -> Prompt:
        """Mask prompt with one positive point at the mask's most interior pixel (so GrabCut refines it)."""
        import cv2

        dist = cv2.distanceTransform(self.mask.astype(np.uint8), cv2.DIST_L2, 3)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return Prompt(mask=self.mask, points=[[float(x), float(y)]], labels=[1])


def superpixel_graph(labels: np.ndarray) -> np.ndarray:
    """Unique ``E×2`` pairs ``(a < b)`` of 4-adjacent superpixel labels in an ``H×W`` int map."""
    pairs = [np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
             np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1)]
    p = np.concatenate(pairs)
    p = p[p[:, 0] != p[:, 1]]
    return np.unique(np.sort(p, axis=1), axis=0)


def geodesic_saliency(image: np.ndarray, n_segments: int = 300, tolerance: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Superpixels and their geodesic distance to the border.

    Args:
        image: ``h×w×3`` float RGB in ``[0, 1]`` (a small working copy).
        n_segments: SLIC superpixels.
        tolerance: Lab difference a step may have for free (texture tolerance, ΔE).

    Returns:
        ``(labels h×w int, saliency per label float ΔE)``.
    """
    import cv2
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra
    from skimage.segmentation import slic

    labels = slic(image, n_segments=n_segments, compactness=10.0, start_label=0, channel_axis=-1)
    n = int(labels.max()) + 1
    lab = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    count = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    mean = np.stack([np.bincount(labels.ravel(), lab[:, c], minlength=n) for c in range(3)], 1) / np.maximum(count, 1)[:, None]
    e = superpixel_graph(labels)
    wgt = np.maximum(np.linalg.norm(mean[e[:, 0]] - mean[e[:, 1]], axis=1) - tolerance, 0.0) + 1e-3
    # a virtual node n joins every border superpixel at no cost: one Dijkstra gives the distance to the border
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    rows = np.concatenate([e[:, 0], e[:, 1], np.full(len(border), n)])
    cols = np.concatenate([e[:, 1], e[:, 0], border])
    vals = np.concatenate([wgt, wgt, np.full(len(border), 1e-3)])
    g = coo_matrix((vals, (rows, cols)), shape=(n + 1, n + 1)).tocsr()
    dist = dijkstra(g, directed=True, indices=n)[:n]
    return labels, np.where(np.isfinite(dist), dist, 0.0)


def find_candidates(image: np.ndarray, *, min_contrast: float = 20.0, min_area: float = 4e-3, max_area: float = 0.5,
                    n_segments: int = 300, work_side: int = 256, tolerance: float = 4.0) -> list[Candidate]:
    """Salient object candidates of an image, best first (empty when nothing is salient).

    Args:
        image: ``H×W×3`` float RGB in ``[0, 1]``.
        min_contrast: a superpixel is salient when its geodesic distance to the border is at
            least this (ΔE); also the stopping rule of automatic peeling.
        min_area: smallest candidate, as a fraction of the image.
        max_area: largest candidate (bigger salient regions are background, not an object).
        n_segments: SLIC superpixels on the working copy.
        work_side: long side of the working copy.
        tolerance: free Lab step between neighbouring superpixels (texture tolerance).

    Returns:
        Candidates with full-resolution masks, sorted by score.
    """
    import cv2
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    h, w = image.shape[:2]
    k = min(1.0, work_side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA) if k < 1 else image
    labels, sal = geodesic_saliency(small, n_segments, tolerance)
    n = len(sal)
    salient = sal >= min_contrast
    if not salient.any():
        return []
    e = superpixel_graph(labels)
    e = e[salient[e[:, 0]] & salient[e[:, 1]]]
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    area_px = np.bincount(labels.ravel(), minlength=n)
    out: list[Candidate] = []
    total = float(labels.size)
    for c in np.unique(comp[salient]):
        members = np.flatnonzero(salient & (comp == c))
        frac = area_px[members].sum() / total
        if not min_area <= frac <= max_area:
            continue
        small_mask = np.isin(labels, members)
        mask = cv2.resize(small_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool) if k < 1 else small_mask
        box = alpha_bbox(mask.astype(np.float32))
        if box is None:
            continue
        contrast = float(np.average(sal[members], weights=area_px[members]))
        out.append(Candidate(mask, box, contrast * float(np.sqrt(frac)), contrast))
    return sorted(out, key=lambda cand: -cand.score)


def grounded_prompts(grounder: Any, image: np.ndarray, phrases: str = GENERIC_PHRASES, min_score: float = 0.3,
                     nms_iou: float = 0.7, limit: int = 19) -> list[Prompt]:
    """Box prompts from a grounder run on generic phrases (non-maximum suppressed, best first)."""
    det = grounder(image, phrases)
    order = np.argsort(-np.asarray(det.scores, np.float64))
    boxes: list[Box] = []
    for i in order:
        if det.scores[i] < min_score:
            break
        b = tuple(int(round(v)) for v in det.boxes[i])
        if all(box_iou(b, kept) < nms_iou for kept in boxes):  # type: ignore[arg-type]
            boxes.append(b)  # type: ignore[arg-type]
        if len(boxes) >= limit:
            break
    h, w = image.shape[:2]
    return [Prompt(boxes=[[max(0, b[0]), max(0, b[1]), min(w, b[2]), min(h, b[3])]]) for b in boxes if b[2] > b[0] and b[3] > b[1]]


def auto_layers(pipe: Any, image: np.ndarray, *, max_layers: int = 20, merge: Sequence[tuple[int, int]] = (),
                min_area: float = 5e-4, progress: ProgressFn | None = None, min_contrast: float = 20.0,
                candidate_area: float = 0.01) -> LayersResult:
    """Decompose ``image`` with no prompt; the method decides the number of layers (at most ``max_layers``).

    Uses, in this order of preference: the segmenter's ``automatic_masks`` (SAM), the pipeline's
    grounder with :data:`GENERIC_PHRASES`, else weight-free geodesic-saliency candidates peeled
    one at a time until nothing salient is left.

    Args:
        pipe: the single-object pipeline.
        image: ``H×W×3`` float32.
        max_layers: cap, background included.
        merge: stack-index ranges merged afterwards.
        min_area: a peel with less alpha mass (fraction of the image) is empty.
        progress: ``progress(done, total, message)``.
        min_contrast: saliency threshold (ΔE) of :func:`find_candidates`; the stopping rule.
        candidate_area: smallest candidate as a fraction of the image.

    A candidate lying mostly within 2 % of the image side of an already peeled object is taken
    for a leftover of it and skipped.
    """
    import cv2

    limit = max_layers - 1
    masks_fn = getattr(getattr(pipe, "segmenter", None), "automatic_masks", None)
    if callable(masks_fn):
        masks = sorted((np.asarray(m, bool) for m in masks_fn(image)), key=lambda m: -int(m.sum()))
        prompts = [Prompt(mask=m) for m in masks if m.mean() >= candidate_area][:limit]
        return _prompted(pipe, image, prompts, max_layers, merge, min_area, progress, "auto-sam")
    if getattr(pipe, "grounder", None) is not None:
        prompts = grounded_prompts(pipe.grounder, image, limit=limit)
        return _prompted(pipe, image, prompts, max_layers, merge, min_area, progress, "auto-grounded")
    t0 = time.perf_counter()
    peeler = Peeler(pipe, image, min_area=min_area, progress=progress)
    footprint = np.zeros(image.shape[:2], bool)
    near = np.ones((3, 3), np.uint8)
    grow = max(1, round(0.02 * max(image.shape[:2])))  # leftovers at a peeled object's rim are not new objects
    tried: list[Box] = []
    index = 0
    while len(peeler.layers) < limit and index < 2 * limit + 2:
        cands = [c for c in find_candidates(peeler.current, min_contrast=min_contrast, min_area=candidate_area)
                 if (c.mask & footprint).sum() < 0.5 * c.mask.sum() and all(box_iou(c.box, t) < 0.9 for t in tried)]
        if not cands:
            break
        c = cands[0]
        tried.append(c.box)
        rep = peeler.peel(index, c.prompt(), f"object_{index + 1}")
        if rep.status == "layer":
            footprint |= cv2.dilate((peeler.alphas[-1] > 0.5).astype(np.uint8), near, iterations=grow).astype(bool)
        index += 1
    return peeler.result("auto", t0, merge)


def _prompted(pipe: Any, image: np.ndarray, prompts: list[Prompt], max_layers: int, merge: Sequence[tuple[int, int]],
              min_area: float, progress: ProgressFn | None, mode: str) -> LayersResult:
    if not prompts:
        t0 = time.perf_counter()
        peeler = Peeler(pipe, image, min_area=min_area, progress=progress)
        res = peeler.result(mode, t0, merge)
        res.objects = [ObjectReport(0, "object_1", "empty", detail="no object found")]
        return res
    res = peel_layers(pipe, image, prompts, order="auto", max_layers=max_layers, merge=merge, min_area=min_area,
                      progress=progress)
    res.mode = mode
    return res
