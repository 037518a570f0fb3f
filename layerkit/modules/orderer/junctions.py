"""T-junction cues of the ``cues`` orderer (:mod:`layerkit.modules.orderer.cues`): where two objects
and the rest meet, the front object's outline runs straight through and the one behind turns a corner.

Read three ways: on the masks as area (:func:`junction_area`: the front object fills about half a
small disc at the junction), on the mask outlines as straightness (:func:`junction_straightness`),
and on the image as edge orientation (:func:`junction_orientation`: the image edge between the two
objects has the orientation of the front object's own outline). Each is a score in ``[-1, 1]``,
``> 0`` when ``i`` is in front.
"""

from __future__ import annotations

import cv2
import numpy as np


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)


def _disc(r: int) -> np.ndarray:
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return ((x * x + y * y) <= r * r).astype(np.float32)


def _junctions(mi: np.ndarray, mj: np.ndarray, band: int = 2) -> np.ndarray:
    """Pixels of the shared boundary of ``mi`` and ``mj`` that also touch neither (the T-junctions)."""
    shared = (mi & _dilate(mj, band)) | (mj & _dilate(mi, band))
    return shared & _dilate(~(mi | mj), band + 1)


def junction_area(mi: np.ndarray, mj: np.ndarray, r: int = 10) -> float:
    """``> 0`` when ``i`` fills more than ``j`` of the radius-``r`` discs centred on their T-junctions.

    Args:
        mi: ``H×W`` bool mask of ``i``; ``mj`` of ``j`` (disjoint from ``mi``).
        r: disc radius in pixels.

    Returns:
        ``(A_i − A_j) / (A_i + A_j)`` in ``[-1, 1]``; 0 without junctions.
    """
    j = _junctions(mi, mj)
    if j.sum() < 3:
        return 0.0
    k = _disc(r)
    ai = float(cv2.filter2D(mi.astype(np.float32), -1, k, borderType=cv2.BORDER_CONSTANT)[j].sum())
    aj = float(cv2.filter2D(mj.astype(np.float32), -1, k, borderType=cv2.BORDER_CONSTANT)[j].sum())
    return (ai - aj) / (ai + aj) if ai + aj > 0 else 0.0


def straightness(mask: np.ndarray, other: np.ndarray, arm: int = 10, band: int = 2) -> list[float]:
    """``−cos`` of the contour angle (1: straight, −1: folded back) of ``mask``'s outer contour at
    each point where it switches between bordering ``other`` and bordering the rest.

    The angle at contour point ``p_t`` is the one between ``p_{t−arm} − p_t`` and ``p_{t+arm} − p_t``.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    near = _dilate(other, band)
    out: list[float] = []
    for c in contours:
        p = c[:, 0].astype(np.float64)
        n = len(p)
        if n < 4 * arm:
            continue
        touches = near[p[:, 1].astype(int), p[:, 0].astype(int)]
        if touches.all() or not touches.any():
            continue
        for t in np.flatnonzero(touches != np.roll(touches, 1)):
            a, b = p[(t - arm) % n] - p[t], p[(t + arm) % n] - p[t]
            na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            if na >= 1 and nb >= 1:
                out.append(-float(a @ b) / (na * nb))
    return out


def junction_straightness(mi: np.ndarray, mj: np.ndarray, arm: int = 10) -> float:
    """``> 0`` when ``i``'s contour is straighter than ``j``'s where the two meet the rest (``[-1, 1]``)."""
    si, sj = straightness(mi, mj, arm), straightness(mj, mi, arm)
    return 0.0 if not si or not sj else float(np.clip((np.mean(si) - np.mean(sj)) / 2, -1, 1))


def edge_gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel gradients ``(gx, gy)``, ``H×W×3`` each, of ``image`` in CIE Lab, smoothed by a Gaussian of σ 1 px."""
    lab = cv2.GaussianBlur(cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2LAB), (0, 0), 1.0)
    return cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)


def _orientation(gx: np.ndarray, gy: np.ndarray, sel: np.ndarray) -> tuple[float, float] | None:
    """Doubled angle of the dominant gradient direction over ``sel`` (colour structure tensor, all
    channels summed) and its coherence in ``[0, 1]``; None without gradient."""
    x, y = gx[sel], gy[sel]
    jxx, jyy, jxy = float((x * x).sum()), float((y * y).sum()), float((x * y).sum())
    if jxx + jyy <= 1e-9:
        return None
    return float(np.arctan2(2 * jxy, jxx - jyy)), float(np.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy))


def junction_orientation(grads: tuple[np.ndarray, np.ndarray], mi: np.ndarray, mj: np.ndarray, r1: int = 14,
                         r0: int = 3, band: int = 3) -> float:
    """``> 0`` when, at the T-junctions of ``mi`` and ``mj``, the image edge between the two has the
    orientation of ``i``'s own outline rather than ``j``'s (``i``'s outline runs straight on: ``i``
    in front); ``[-1, 1]``, 0 without junctions.

    Per junction (a connected part of :func:`_junctions`), three bands of ``band`` pixels along the
    boundaries ``i|j``, ``i|rest`` and ``j|rest``, each cut to the annulus ``r0…r1`` pixels around the
    junction, give an edge orientation (:func:`_orientation` on ``grads``, from
    :func:`edge_gradients`); the junction scores ``(cos(θ_ij − θ_i) − cos(θ_ij − θ_j)) / 2`` (doubled
    angles: 1 parallel, −1 at right angles), and the junctions are averaged weighted by coherence.

    Args:
        grads: ``(gx, gy)`` of the crop the masks are on.
        mi: ``H×W`` bool mask of ``i``; ``mj`` of ``j`` (disjoint from ``mi``).
        r1: outer radius of the annulus in pixels; ``r0`` the inner one.
        band: half-width of the boundary bands in pixels.
    """
    jm = _junctions(mi, mj)
    if jm.sum() < 3:
        return 0.0
    gx, gy = grads
    rest = ~(mi | mj)
    b_ij = (mi & _dilate(mj, band)) | (mj & _dilate(mi, band))
    b_i = ((mi & _dilate(rest, band)) | (rest & _dilate(mi, band))) & ~_dilate(mj, band)
    b_j = ((mj & _dilate(rest, band)) | (rest & _dilate(mj, band))) & ~_dilate(mi, band)
    _, _, _, cents = cv2.connectedComponentsWithStats(jm.astype(np.uint8))
    h, w = mi.shape
    vals, wts = [], []
    for cx, cy in cents[1:]:
        x0, y0, x1, y1 = max(0, int(cx) - r1), max(0, int(cy) - r1), min(w, int(cx) + r1 + 2), min(h, int(cy) + r1 + 2)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        ann = (d2 >= r0 * r0) & (d2 <= r1 * r1)
        win = (slice(y0, y1), slice(x0, x1))
        o = [_orientation(gx[win], gy[win], b[win] & ann) for b in (b_ij, b_i, b_j)]
        if any(v is None for v in o):
            continue
        (t_ij, c_ij), (t_i, c_i), (t_j, c_j) = o  # type: ignore[misc]
        vals.append((np.cos(t_ij - t_i) - np.cos(t_ij - t_j)) / 2)
        wts.append(c_ij * min(c_i, c_j) + 1e-3)
    return float(np.average(vals, weights=wts)) if vals else 0.0
