"""The shadow model of the effects stage: a silhouette projected on the ground plane, softened
with the distance from the contact (:func:`soft_shadow`), and its strength matched against the lit
ground of the same colour (:func:`matched_strength`; for a shadow with no inner core, over the whole
region around it: :func:`region_fit`). :class:`~layerkit.modules.effects.shadow.ShadowMixin`
searches, fits and removes shadows with these."""

from __future__ import annotations

import cv2
import numpy as np

from layerkit.modules.effects.common import odd as _odd
from layerkit.types import alpha_bbox

#: coarse grid of light directions (``sy`` < 0: cast behind the object, > 0: in front)
SY_GRID = (-0.55, -0.45, -0.36, -0.28, -0.21, -0.15, -0.1, 0.12, 0.2, 0.28)
SX_GRID = tuple(float(v) for v in np.linspace(-1.4, 1.4, 21))


def affine(sx: float, sy: float, yb: float) -> np.ndarray:
    """The ground-plane projection from the contact row ``yb`` (``2×3``, for ``cv2.warpAffine``)."""
    return np.array([[1.0, -sx, sx * yb], [0.0, -sy, yb * (1.0 + sy)]])


def grad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences ``(∂x, ∂y)`` of an ``H×W`` map (zero on the border)."""
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, 1:-1] = 0.5 * (x[:, 2:] - x[:, :-2])
    gy[1:-1] = 0.5 * (x[2:] - x[:-2])
    return gx, gy


def projected_box(sil_box: tuple[int, int, int, int], m: np.ndarray, shape: tuple[int, int],
                  margin: int) -> tuple[int, int, int, int] | None:
    """Box ``(x0, y0, x1, y1)`` of the silhouette's box mapped by the affine ``m``, grown by
    ``margin`` and clipped to ``shape``; None when (nearly) empty."""
    cx = np.array([sil_box[0], sil_box[2], sil_box[0], sil_box[2]], np.float64)
    cy = np.array([sil_box[1], sil_box[1], sil_box[3], sil_box[3]], np.float64)
    px, py = m[0, 0] * cx + m[0, 1] * cy + m[0, 2], m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
    ox, oy = max(0, int(px.min()) - margin), max(0, int(py.min()) - margin)
    ex, ey = min(shape[1], int(px.max()) + margin + 1), min(shape[0], int(py.max()) + margin + 1)
    if ex - ox < 4 or ey - oy < 4:
        return None
    return ox, oy, ex, ey


def soft_shadow(sil: np.ndarray, sx: float, sy: float, yb: float, sig0: float, sig1: float,
                oh: float, crop: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Projected silhouette blurred by ``sig0 + sig1·d`` (``d`` = height above the contact / object
    height, carried along by the projection) → ``(soft mask, d)``, both ``H×W`` in ``[0, 1]``
    (or the ``crop`` box ``(x0, y0, x1, y1)`` of them)."""
    h, w = sil.shape
    m = affine(sx, sy, yb)
    ys = np.arange(h, dtype=np.float32)[:, None].repeat(w, axis=1)
    height = np.clip((yb - ys) / max(oh, 1.0), 0.0, 1.0)
    if crop is not None:
        m = m.copy()
        m[0, 2] -= crop[0]
        m[1, 2] -= crop[1]
        w, h = crop[2] - crop[0], crop[3] - crop[1]
    proj = cv2.warpAffine(sil, m, (w, h), flags=cv2.INTER_LINEAR)
    dist = cv2.warpAffine(height, m, (w, h), flags=cv2.INTER_LINEAR)
    sigmas = np.linspace(max(sig0, 0.3), max(sig0, 0.3) + max(sig1, 0.0), 3)
    wide = cv2.GaussianBlur(proj, (0, 0), float(sigmas[-1]))
    d = np.clip(cv2.GaussianBlur(proj * dist, (0, 0), float(sigmas[-1])) / np.maximum(wide, 1e-4), 0.0, 1.0)
    levels = np.stack([cv2.GaussianBlur(proj, (0, 0), float(s)) for s in sigmas])
    pos = d * (len(sigmas) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(sigmas) - 2)
    t = pos - lo
    soft = (1 - t) * np.take_along_axis(levels, lo[None], 0)[0] + t * np.take_along_axis(levels, lo[None] + 1, 0)[0]
    return soft.astype(np.float32), d.astype(np.float32)


def chroma_key(u: np.ndarray, v: np.ndarray, bin_width: float) -> np.ndarray:
    """One integer per chromaticity bin (``bin_width`` wide in log R/G and log B/G): a material's key."""
    return np.floor(u / bin_width).astype(np.int64) * 100003 + np.floor(v / bin_width).astype(np.int64)


def matched_strength(lum: np.ndarray, u: np.ndarray, v: np.ndarray, soft: np.ndarray, dist: np.ndarray,
                     obj: np.ndarray, oh: float, bin_width: float,
                     core_level: float = 0.5) -> tuple[float, float, float, float] | None:
    """Strength and fade of a candidate shadow against the lit ground *of the same colour* next to it.

    A shadow keeps the ground's chromaticity ``(u, v)`` (log R/G, log B/G) and lowers its
    log-luminance by ``log(1 − a)``. Each pixel of the shadow's core is compared with the ring
    pixels around the shadow in the same chromaticity bin (the same material, lit): the
    strength makes the median corrected difference zero, separately near the contact and far
    from it (the fade). A dark neighbour of another colour finds no lit pixels of its colour.

    Args:
        lum, u, v: ``H×W`` log-luminance and log-chromaticities of the ground.
        soft, dist: the candidate's soft mask and height map (:func:`soft_shadow`).
        obj: ``H×W`` bool, the object (excluded).
        oh: object height in pixels (sets the ring's width).
        bin_width: chromaticity bin width (log units).
        core_level: the core is where the soft mask exceeds this.

    Returns:
        ``(strength, fade, dark_share, cover)``: ``dark_share`` = share of core pixels darker
        than their lit match, ``cover`` = share of core pixels that found one; None when the
        core or the ring is empty.
    """
    core = (soft > core_level) & ~obj
    kk = _odd(0.25 * oh)
    ring = cv2.dilate((soft > 0.02).astype(np.uint8), np.ones((kk, kk), np.uint8)).astype(bool) & (soft <= 0.02) & ~obj
    if core.sum() < 8 or ring.sum() < 8:
        return None
    key = chroma_key(u, v, bin_width)
    kr, kc = key[ring], key[core]
    uk, inv = np.unique(kr, return_inverse=True)
    cnt = np.bincount(inv)
    mean = np.bincount(inv, lum[ring]) / cnt
    pos = np.searchsorted(uk, kc).clip(0, len(uk) - 1)
    ok = (uk[pos] == kc) & (cnt[pos] >= 5)
    cover = float(ok.mean())
    if ok.sum() < 8:
        return None
    diff = lum[core][ok] - mean[pos[ok]]
    m, d = soft[core][ok], dist[core][ok]
    dark = float((diff < 0).mean())
    grid = np.linspace(0.02, 0.9, 89)

    def solve(sel: np.ndarray) -> float:
        cost = np.abs(np.median(diff[sel][None] - np.log(1.0 - grid[:, None] * m[sel][None]), axis=1))
        return float(grid[int(np.argmin(cost))])

    s_all = solve(np.ones_like(diff, bool))
    near, far = d < 0.5, d >= 0.5
    if near.sum() < 8 or far.sum() < 8:
        return s_all, 0.0, dark, cover
    s_n, s_f = solve(near), solve(far)
    d_n, d_f = float(d[near].mean()), float(d[far].mean())
    # s_i = s·(1 − f·d_i)  →  f, s (the fade only weakens the shadow away from the contact)
    fade = float(np.clip((s_n - s_f) / max(s_n * d_f - s_f * d_n, 1e-6), 0.0, 0.6)) if s_n > s_f else 0.0
    strength = float(np.clip(s_n / max(1.0 - fade * d_n, 1e-3), 0.0, 0.95))
    return strength, fade, dark, cover


def region_fit(sil: np.ndarray, lum: np.ndarray, u: np.ndarray, v: np.ndarray, obj: np.ndarray, sx: float, sy: float,
               yc: float, oh: float, sig0: float, sig1: float, bin_width: float) -> tuple[float, float] | None:
    """Strength and fade that make each material of the whole region most uniform once the shadow is divided out.

    A shadow keeps the ground's chromaticity, so in a window around the shadow (its projected
    box grown by a quarter of the object's height) the pixels are grouped by chromaticity bin
    (a material), and the strength and fade (on a grid) are those of least spread of the
    *cleaned* log-luminance ``L − log(1 − a)`` within the bins. Every pixel of the region
    counts, not only a core where the soft mask is high: too weak a shadow leaves dark pixels
    among lit ones of their material, too strong one bright ones. None: no window.
    """
    sb = alpha_bbox(sil)
    win = projected_box(sb, affine(sx, sy, yc), sil.shape, int(np.ceil(3.0 * (sig0 + sig1) + 0.25 * oh)) + 3)  # type: ignore[arg-type]
    if win is None:
        return None
    ox, oy, ex, ey = win
    sel = ~obj[oy:ey, ox:ex]
    key = chroma_key(u[oy:ey, ox:ex], v[oy:ey, ox:ex], bin_width)[sel]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    cnt = np.diff(np.r_[starts, len(ks)]).astype(np.float64)
    lw = lum[oy:ey, ox:ex][sel][order].astype(np.float64)
    soft, dist = soft_shadow(sil, sx, sy, yc, sig0, sig1, oh, win)
    ms, ds = soft[sel][order].astype(np.float64), dist[sel][order].astype(np.float64)
    strengths, fades = np.linspace(0.0, 0.9, 19), np.array([0.0, 0.2, 0.4, 0.6])
    a = np.clip(strengths[:, None, None] * (ms[None, :] * (1.0 - fades[:, None] * ds[None, :]))[None], 0.0, 0.95)
    c = lw[None, None] - np.log1p(-a)  # (strengths, fades, pixels): the cleaned log-luminance
    spread = (c * c).sum(axis=2) - (np.add.reduceat(c, starts, axis=2) ** 2 / cnt).sum(axis=2)
    i, j = np.unravel_index(int(np.argmin(spread)), spread.shape)
    return float(strengths[i]), float(fades[j])
