"""Object proposals without weights: **geodesic saliency** on a superpixel graph.

The image is cut into SLIC superpixels (Lab colour); a superpixel's saliency is its geodesic
colour distance to the image border (the cheapest path through neighbouring superpixels, each step
costing its Lab difference above a texture tolerance). Background is reachable from the border
through similar colours; an object is cut off by its contour. Connected salient superpixels form a
candidate; its mask (plus an interior point, so that GrabCut refines it) is the prompt.

The proposer is *iterative*: the multi-layer pipeline peels the most salient candidate, asks
again on the completed background, and stops when nothing salient is left.
"""

from __future__ import annotations

import numpy as np

from layerkit.modules.base import Candidate, Proposer
from layerkit.types import alpha_bbox


class SaliencyProposer(Proposer):
    """Image → salient object candidates, best first (weight-free): :func:`find_candidates` with
    these arguments (see there); ``min_area`` defaults to 1 % of the image, the automatic mode's
    smallest object."""

    iterative = True

    def __init__(self, min_contrast: float = 20.0, min_area: float = 0.01, max_area: float = 0.5,
                 n_segments: int = 300, work_side: int = 256, tolerance: float = 4.0) -> None:
        self.min_contrast, self.min_area, self.max_area = float(min_contrast), float(min_area), float(max_area)
        self.n_segments, self.work_side, self.tolerance = int(n_segments), int(work_side), float(tolerance)

    def __call__(self, image: np.ndarray, grounder: object = None) -> list[Candidate]:
        """Candidates of ``image`` (``H×W×3`` float RGB in ``[0, 1]``), best first; ``[]`` when nothing is salient."""
        return find_candidates(image, min_contrast=self.min_contrast, min_area=self.min_area, max_area=self.max_area,
                               n_segments=self.n_segments, work_side=self.work_side, tolerance=self.tolerance)


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
