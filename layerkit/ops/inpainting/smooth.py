"""Smooth hole filling: membrane (harmonic) and biharmonic interpolation, pull-push, OpenCV.

Every function takes an ``H×W×C`` float image in ``[0, 1]`` (HWC) and an ``H×W`` bool ``hole``
(True = unknown) and returns a float32 ``H×W×C`` image with the hole filled; pixels outside the
hole are returned unchanged. The method list and the dispatcher are in
:mod:`layerkit.ops.inpainting`.
"""

from __future__ import annotations

import cv2
import numpy as np

_CROSS = np.array([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]], np.float32)


def inpaint_opencv(image: np.ndarray, hole: np.ndarray, method: str = "telea", radius: int = 5) -> np.ndarray:
    """OpenCV's Telea (fast marching) or Navier-Stokes inpainting, computed on 8-bit data.

    Args:
        image: ``H×W×3`` (or ``H×W×1``) float image in ``[0, 1]``.
        hole: ``H×W`` bool, True where the image is unknown.
        method: ``"telea"`` or ``"ns"``.
        radius: neighbourhood radius in pixels.

    Returns:
        ``H×W×C`` float32 in ``[0, 1]``; known pixels keep their exact (not 8-bit) values.
    """
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    img8 = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    out = cv2.inpaint(img8, hole.astype(np.uint8), radius, flag).astype(np.float32) / 255.0
    out = out.reshape(image.shape)
    return np.where(hole[..., None], out, image).astype(np.float32)


def inpaint_pushpull(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Pull-push fill: average the known pixels down a pyramid, interpolate back up.

    Args:
        image: ``H×W×C`` float image in ``[0, 1]``.
        hole: ``H×W`` bool, True where unknown.

    Returns:
        ``H×W×C`` float32; smooth, slightly blocky far inside large holes.
    """
    return _coarse_to_fine(image, hole, iterations=0)


def inpaint_harmonic(image: np.ndarray, hole: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Membrane (harmonic) fill: ``Δu = 0`` in the hole, ``u = image`` on its boundary.

    Solved coarse-to-fine: the pull-push pyramid gives every level a start that is already
    right at low frequencies, and ``iterations`` Jacobi sweeps per level remove the rest
    (more sweeps change the dev-set PSNR by < 0.02 dB). Cost is linear in the number of
    pixels of the hole's bounding box; memory is a few copies of that box.

    Args:
        image: ``H×W×C`` float image in ``[0, 1]``.
        hole: ``H×W`` bool, True where unknown.
        iterations: Jacobi sweeps per pyramid level.

    Returns:
        ``H×W×C`` float32, smooth inside the hole and continuous at its edge.
    """
    return _coarse_to_fine(image, hole, iterations=iterations)


def inpaint_biharmonic(image: np.ndarray, hole: np.ndarray, max_unknowns: int = 1000, iterations: int = 5) -> np.ndarray:
    """Biharmonic fill (``Δ²u = 0``, scikit-image) on a coarse pyramid level.

    A full-resolution biharmonic solve costs seconds for a 100k-pixel hole and extrapolates the
    boundary's noise into it; here it runs on the first pull-push level whose hole has at most
    ``max_unknowns`` pixels. The upsampled result is then made to meet the full-resolution
    boundary exactly by adding the harmonic interpolation of the boundary residual.

    Args:
        image: ``H×W×C`` float image in ``[0, 1]``.
        hole: ``H×W`` bool, True where unknown.
        max_unknowns: largest hole (in pixels) solved by the biharmonic equation.
        iterations: Jacobi sweeps per level of the harmonic correction.

    Returns:
        ``H×W×C`` float32.
    """
    from skimage.restoration import inpaint_biharmonic as sk_biharmonic

    images, holes = _pull(image.astype(np.float32), hole)
    level = 0
    while level < len(holes) - 1 and int(holes[level].sum()) > max_unknowns:
        level += 1
    x = images[level]
    if holes[level].any():
        x = sk_biharmonic(x, holes[level], channel_axis=-1).astype(np.float32)
    for k in range(level - 1, -1, -1):
        x = np.where(holes[k][..., None], _upsample2(x, holes[k].shape), images[k])
    return match_boundary(image, hole, x, iterations)


def match_boundary(image: np.ndarray, hole: np.ndarray, fill: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Make ``fill`` meet ``image`` at the hole's edge by adding a harmonic correction.

    The residual ``image − fill`` on the known pixels is interpolated into the hole with
    :func:`inpaint_harmonic` and added to ``fill`` (the seamless-cloning idea), so any fill
    computed at low resolution joins the full-resolution boundary without a seam.

    Args:
        image: ``H×W×C`` float image; its known pixels are the target.
        hole: ``H×W`` bool, True where ``fill`` is used.
        fill: ``H×W×C`` proposal for the hole (values outside the hole are ignored).
        iterations: Jacobi sweeps per level.

    Returns:
        ``H×W×C`` float32: ``image`` outside the hole, corrected ``fill`` inside.
    """
    image = image.astype(np.float32)
    residual = np.where(hole[..., None], 0.0, image - fill).astype(np.float32)
    correction = _coarse_to_fine(residual, hole, iterations)
    return np.where(hole[..., None], fill + correction, image).astype(np.float32)


# ---------------------------------------------------------------------------- pyramid helpers
def _pool2(x: np.ndarray) -> np.ndarray:
    """2×2 mean (odd sizes padded with zeros, which callers weight out)."""
    h, w = x.shape[:2]
    if h % 2 or w % 2:
        x = np.pad(x, ((0, h % 2), (0, w % 2)) + ((0, 0),) * (x.ndim - 2))
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _upsample2(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear ×2 upsampling (pixel-centre aligned with :func:`_pool2`), cropped to ``shape``."""
    y = cv2.resize(x, (x.shape[1] * 2, x.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    return y.reshape(y.shape[:2] + x.shape[2:])[: shape[0], : shape[1]]


def _pull(image: np.ndarray, hole: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pull phase: known-weighted 2×2 means until no level has a hole.

    A coarse pixel is known when any of its four children is; its value is the mean of the
    known children. Returns lists (finest first) of ``h×w×C`` images and ``h×w`` holes.
    """
    if hole.all():
        raise ValueError("the hole covers every pixel, so there is nothing to fill it from")
    images, holes = [image], [hole]
    while holes[-1].any():
        known = (~holes[-1]).astype(np.float32)
        den = _pool2(known)
        num = _pool2(images[-1] * known[..., None])
        h2 = den <= 0
        images.append((num / np.maximum(den, 1e-12)[..., None]).astype(np.float32))
        holes.append(h2)
    return images, holes


def _relax(x: np.ndarray, hole: np.ndarray, iterations: int) -> np.ndarray:
    """Jacobi sweeps of ``u = mean of 4 neighbours`` on the hole's pixels (in place on ``x``)."""
    ys, xs = np.nonzero(hole)
    y0, y1 = max(ys.min() - 1, 0), min(ys.max() + 2, hole.shape[0])
    x0, x1 = max(xs.min() - 1, 0), min(xs.max() + 2, hole.shape[1])
    sub, m = x[y0:y1, x0:x1], hole[y0:y1, x0:x1, None]
    for _ in range(iterations):
        avg = cv2.filter2D(sub, -1, _CROSS, borderType=cv2.BORDER_REPLICATE).reshape(sub.shape)
        sub = np.where(m, avg, sub)
    x[y0:y1, x0:x1] = sub
    return x


def _coarse_to_fine(image: np.ndarray, hole: np.ndarray, iterations: int) -> np.ndarray:
    """Pull, then push back up with bilinear upsampling and ``iterations`` Jacobi sweeps per level."""
    images, holes = _pull(image.astype(np.float32), hole)
    x = images[-1]
    for k in range(len(images) - 2, -1, -1):
        x = np.where(holes[k][..., None], _upsample2(x, holes[k].shape), images[k]).astype(np.float32)
        if iterations > 0:
            x = _relax(x, holes[k], iterations)
    return x
