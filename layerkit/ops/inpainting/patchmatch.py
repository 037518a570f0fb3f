"""Exemplar-based hole filling: coarse-to-fine PatchMatch texture synthesis.

The hole is filled with patches copied from the visible part of the same image, in the
expectation-maximisation form of Wexler, Shechtman & Irani ("Space-Time Completion of Video",
PAMI 2007) with the randomised nearest-neighbour search of Barnes et al. ("PatchMatch", SIGGRAPH
2009):

1. Build an image pyramid; at the coarsest level start from the harmonic (membrane) fill.
2. At each level repeat: for every patch that overlaps the hole find its most similar patch
   lying entirely in the visible area (PatchMatch: propagation from neighbours + random search
   at halving radii), then set each hole pixel to the mean of the pixels that the overlapping
   matched patches put there ("voting").
3. Upsample the nearest-neighbour field to the next finer level, vote once to get that
   level's start, and go on.

The kernels are compiled by numba (a dependency of pymatting) on first use and cached on disk.
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit

from layerkit.ops.inpainting.smooth import inpaint_harmonic


@njit(cache=True, fastmath=True)
def _patch_ssd(img: np.ndarray, ty: int, tx: int, sy: int, sx: int, r: int, bound: float) -> float:  # pragma: no cover
    """Sum of squared differences of the ``(2r+1)²`` patches centred at (ty, tx) and (sy, sx);
    stops early (returning a value ≥ ``bound``) once the partial sum reaches ``bound``."""
    d = 0.0
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            for c in range(img.shape[2]):
                e = img[ty + dy, tx + dx, c] - img[sy + dy, sx + dx, c]
                d += e * e
        if d >= bound:
            return d
    return d


@njit(cache=True)
def _search(img: np.ndarray, ty: np.ndarray, tx: np.ndarray, ny: np.ndarray, nx: np.ndarray, source_ok: np.ndarray,
            iterations: int, r: int, seed: int, max_radius: int) -> None:  # pragma: no cover
    """PatchMatch sweeps updating the field ``(ny, nx)`` of targets ``(ty, tx)`` in place; the
    random search starts at ``max_radius`` pixels around the current match and halves."""
    np.random.seed(seed)
    h, w = source_ok.shape
    n = ty.shape[0]
    index = -np.ones((h, w), np.int64)
    for i in range(n):
        index[ty[i], tx[i]] = i
    cost = np.empty(n, np.float64)
    for i in range(n):
        cost[i] = _patch_ssd(img, ty[i], tx[i], ny[i], nx[i], r, 1e30)
    for it in range(iterations):
        step = 1 if it % 2 == 0 else -1
        for k in range(n):
            i = k if step == 1 else n - 1 - k
            y, x = ty[i], tx[i]
            for axis in range(2):  # propagation from the previous row / column in scan order
                j = index[y - step, x] if axis == 0 else index[y, x - step]
                if j < 0:
                    continue
                cy = ny[j] + step if axis == 0 else ny[j]
                cx = nx[j] if axis == 0 else nx[j] + step
                if 0 <= cy < h and 0 <= cx < w and source_ok[cy, cx]:
                    d = _patch_ssd(img, y, x, cy, cx, r, cost[i])
                    if d < cost[i]:
                        cost[i], ny[i], nx[i] = d, cy, cx
            radius = max_radius
            while radius >= 1:  # random search around the current match
                cy = ny[i] + np.random.randint(-radius, radius + 1)
                cx = nx[i] + np.random.randint(-radius, radius + 1)
                if 0 <= cy < h and 0 <= cx < w and source_ok[cy, cx]:
                    d = _patch_ssd(img, y, x, cy, cx, r, cost[i])
                    if d < cost[i]:
                        cost[i], ny[i], nx[i] = d, cy, cx
                radius //= 2


@njit(cache=True)
def _vote(img: np.ndarray, hole: np.ndarray, ty: np.ndarray, tx: np.ndarray, ny: np.ndarray, nx: np.ndarray,
          r: int) -> np.ndarray:  # pragma: no cover
    """Each hole pixel becomes the mean of what the matched patches covering it hold there."""
    h, w, ch = img.shape
    index = -np.ones((h, w), np.int64)
    for i in range(ty.shape[0]):
        index[ty[i], tx[i]] = i
    out = img.copy()
    acc = np.zeros(ch, np.float32)
    for y in range(r, h - r):
        for x in range(r, w - r):
            if not hole[y, x]:
                continue
            acc[:] = 0.0
            count = 0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    j = index[y - dy, x - dx]
                    if j >= 0:
                        sy, sx = ny[j] + dy, nx[j] + dx
                        for c in range(ch):
                            acc[c] += img[sy, sx, c]
                        count += 1
            if count > 0:
                for c in range(ch):
                    out[y, x, c] = acc[c] / count
    return out


def inpaint_exemplar(image: np.ndarray, hole: np.ndarray, patch_size: int = 7,
                     em_iterations: tuple[int, ...] = (3, 2, 1), search_iterations: tuple[int, ...] = (4, 2, 1),
                     seed: int = 0, fine_radius: int | None = 32) -> np.ndarray:
    """Fill ``hole`` with texture copied from the rest of ``image`` (coarse-to-fine PatchMatch).

    Args:
        image: ``H×W×C`` float image in ``[0, 1]`` (HWC).
        hole: ``H×W`` bool, True where unknown.
        patch_size: odd patch side in pixels.
        em_iterations: search + vote rounds per level, coarsest level first; the last value
            is used for all remaining levels.
        search_iterations: PatchMatch sweeps per round, indexed like ``em_iterations``.
        seed: random seed (the result is deterministic for a given seed).
        fine_radius: largest random-search radius (pixels) on every level but the coarsest,
            where the upsampled field is already close; ``None`` searches the whole image.

    Returns:
        ``H×W×C`` float32; equal to ``image`` outside the hole. Falls back to the harmonic fill
        when no patch of the visible area lies entirely outside the hole.
    """
    if patch_size < 3 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd and >= 3, got {patch_size}")
    image = image.astype(np.float32)
    hole = hole.astype(bool)
    r = patch_size // 2
    images, holes = _pyramid(image, hole, patch_size)
    field: tuple[np.ndarray, ...] | None = None
    for level in range(len(images) - 1, -1, -1):
        img = np.pad(images[level], ((r, r), (r, r), (0, 0)), mode="reflect")
        hol = np.pad(holes[level], r)
        h, w = hol.shape
        box = np.ones((patch_size, patch_size), np.uint8)
        near_hole = cv2.dilate(hol.astype(np.uint8), box).astype(bool)
        source_ok = ~near_hole
        source_ok[: 2 * r], source_ok[h - 2 * r:], source_ok[:, : 2 * r], source_ok[:, w - 2 * r:] = False, False, False, False
        near_hole[:r], near_hole[h - r:], near_hole[:, :r], near_hole[:, w - r:] = False, False, False, False
        ty, tx = (a.astype(np.int64) for a in np.nonzero(near_hole))
        sy, sx = (a.astype(np.int64) for a in np.nonzero(source_ok))
        if sy.size == 0:
            return inpaint_harmonic(image, hole)
        rng = np.random.default_rng(seed + level)
        if field is None:
            start = inpaint_harmonic(images[level], holes[level])
            img = np.pad(start, ((r, r), (r, r), (0, 0)), mode="reflect")
            pick = rng.integers(0, sy.size, ty.size)
            ny, nx = sy[pick], sx[pick]
        else:
            ny, nx = _upsample_field(field, ty, tx, r, source_ok, sy, sx, rng)
            img = _vote(img, hol, ty, tx, ny, nx, r)
        k = len(images) - 1 - level
        radius = max(h, w) if k == 0 or fine_radius is None else int(fine_radius)
        rounds = em_iterations[min(k, len(em_iterations) - 1)]
        sweeps = search_iterations[min(k, len(search_iterations) - 1)]
        for e in range(rounds):
            _search(img, ty, tx, ny, nx, source_ok, sweeps, r, seed + 7919 * level + e, radius)
            img = _vote(img, hol, ty, tx, ny, nx, r)
        field = (ty, tx, ny, nx, np.int64(h), np.int64(w))
    out = img[r:-r, r:-r]
    return np.where(hole[..., None], out, image).astype(np.float32)


def _pyramid(image: np.ndarray, hole: np.ndarray, patch_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Halve until the hole is at most ~2 patches deep (or the image ~8 patches small).

    A coarse pixel belongs to the hole when any of its four children does, so coarse known
    pixels are plain 2×2 means of known pixels.
    """
    depth = float(cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3).max())
    images, holes = [image], [hole]
    while depth / 2 ** (len(images) - 1) > 2 * patch_size and min(images[-1].shape[:2]) >= 8 * patch_size:
        hh = holes[-1]
        hp = np.pad(hh, ((0, hh.shape[0] % 2), (0, hh.shape[1] % 2)))
        holes.append(hp[0::2, 0::2] | hp[1::2, 0::2] | hp[0::2, 1::2] | hp[1::2, 1::2])
        prev = images[-1]
        small = cv2.resize(prev, ((prev.shape[1] + 1) // 2, (prev.shape[0] + 1) // 2), interpolation=cv2.INTER_AREA)
        images.append(small.reshape(small.shape[:2] + prev.shape[2:]))
    return images, holes


def _upsample_field(field: tuple[np.ndarray, ...], ty: np.ndarray, tx: np.ndarray, r: int, source_ok: np.ndarray,
                    sy: np.ndarray, sx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Carry a coarse nearest-neighbour field to the finer level (all in padded coordinates).

    A fine target takes its coarse parent's match, doubled, plus its own offset inside the
    parent; matches that land on an invalid source get a random valid one.
    """
    pty, ptx, pny, pnx, ph, pw = field
    match = -np.ones((int(ph), int(pw), 2), np.int64)
    match[pty, ptx, 0], match[pty, ptx, 1] = pny, pnx
    cy = np.clip((ty - r) // 2 + r, 0, int(ph) - 1)
    cx = np.clip((tx - r) // 2 + r, 0, int(pw) - 1)
    py, px = match[cy, cx, 0], match[cy, cx, 1]
    ny = 2 * (py - r) + r + (ty - r) % 2
    nx = 2 * (px - r) + r + (tx - r) % 2
    h, w = source_ok.shape
    bad = (py < 0) | (ny < 0) | (ny >= h) | (nx < 0) | (nx >= w)
    ny, nx = np.where(bad, 0, ny), np.where(bad, 0, nx)
    bad |= ~source_ok[ny, nx]
    pick = rng.integers(0, sy.size, int(bad.sum()))
    ny[bad], nx[bad] = sy[pick], sx[pick]
    return ny.astype(np.int64), nx.astype(np.int64)


def inpaint_texture(image: np.ndarray, hole: np.ndarray, sigma: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonic low frequencies + exemplar high frequencies.

    Args:
        image: ``H×W×C`` float image in ``[0, 1]``.
        hole: ``H×W`` bool, True where unknown.
        sigma: Gaussian sigma (pixels) splitting low from high frequencies.
        seed: random seed of the PatchMatch search.

    Returns:
        ``H×W×C`` float32 in ``[0, 1]``.
    """
    smooth = inpaint_harmonic(image, hole)
    tex = inpaint_exemplar(image, hole, seed=seed)
    detail = tex - cv2.GaussianBlur(tex, (0, 0), sigma).reshape(tex.shape)
    out = np.clip(smooth + detail, 0.0, 1.0)
    return np.where(hole[..., None], out, image).astype(np.float32)
