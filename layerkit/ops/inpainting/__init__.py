"""Background completion: fill the pixels hidden behind an object (weight-free methods).

Every method takes an ``H×W×C`` float image in ``[0, 1]`` (HWC, usually ``C = 3``) and an
``H×W`` bool ``hole`` (True = unknown) and returns a float32 ``H×W×C`` image with the hole
filled; pixels outside the hole are returned unchanged.

Methods (:data:`METHODS`; measured on the dev set in ``docs/inpainting.md``):

- ``harmonic`` (default): membrane interpolation — the solution of Laplace's equation inside
  the hole with the known pixels as boundary values, solved coarse-to-fine (pull-push
  pyramid for the start, a few Jacobi sweeps per level). The smoothest fill that meets the
  boundary; best occluded-region PSNR and the fastest after ``pushpull``.
- ``pushpull``: the pull-push pyramid alone (Gortler et al. 1996), no relaxation.
- ``biharmonic``: scikit-image's biharmonic inpainting on the pyramid level whose hole has at
  most ``max_unknowns`` pixels, upsampled, then matched to the full-resolution boundary by a
  harmonic correction.
- ``telea`` / ``ns``: OpenCV's fast-marching (Telea 2004) and Navier-Stokes inpainting.
- ``exemplar``: coarse-to-fine PatchMatch texture synthesis (Wexler et al. 2007, Barnes et al.
  2009), see :mod:`layerkit.ops.inpainting.patchmatch`. Sharp, but slower and lower PSNR.
- ``texture``: ``harmonic`` low frequencies plus the high frequencies of ``exemplar``: the
  colours of the smooth fill with the grain of the surrounding texture.

Example:
    >>> img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    >>> hole = np.zeros((64, 64), bool); hole[20:40, 20:40] = True
    >>> out = inpaint(img, hole, "harmonic")
    >>> out.shape, bool(np.array_equal(out[~hole], img[~hole]))
    ((64, 64, 3), True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from layerkit.ops.inpainting.patchmatch import inpaint_exemplar, inpaint_texture
from layerkit.ops.inpainting.smooth import inpaint_biharmonic, inpaint_harmonic, inpaint_opencv, inpaint_pushpull, match_boundary

__all__ = ["METHODS", "SEEDED", "inpaint", "inpaint_biharmonic", "inpaint_exemplar", "inpaint_harmonic",
           "inpaint_opencv", "inpaint_pushpull", "inpaint_texture", "match_boundary"]

METHODS: dict[str, Callable[..., np.ndarray]] = {
    "harmonic": inpaint_harmonic,
    "pushpull": inpaint_pushpull,
    "biharmonic": inpaint_biharmonic,
    "telea": lambda image, hole: inpaint_opencv(image, hole, "telea"),
    "ns": lambda image, hole: inpaint_opencv(image, hole, "ns"),
    "exemplar": inpaint_exemplar,
    "texture": inpaint_texture,
}
#: methods that draw random numbers and take ``seed=``
SEEDED = ("exemplar", "texture")


def inpaint(image: np.ndarray, hole: np.ndarray, method: str = "harmonic", seed: int = 0) -> np.ndarray:
    """Fill ``hole`` in ``image`` with ``method`` (one of :data:`METHODS`).

    Args:
        image: ``H×W×C`` float image in ``[0, 1]`` (HWC).
        hole: ``H×W`` bool (or 0/1) mask, True where the image is unknown.
        method: name in :data:`METHODS`.
        seed: seed of the random search of the :data:`SEEDED` methods.

    Returns:
        ``H×W×C`` float32; equal to ``image`` outside the hole.

    Raises:
        ValueError: unknown method, shapes that do not match, or a hole covering every pixel.
    """
    if method not in METHODS:
        raise ValueError(f"unknown inpainting method {method!r}; valid: {', '.join(sorted(METHODS))}")
    image = np.asarray(image)
    hole = np.asarray(hole).astype(bool)
    if image.ndim != 3 or hole.shape != image.shape[:2]:
        raise ValueError(f"expected an H×W×C image and an H×W hole, got image {image.shape} and hole {hole.shape}")
    if not hole.any():
        return image.astype(np.float32)
    if hole.all():
        raise ValueError("the hole covers every pixel, so there is nothing to fill it from; pass a crop with visible background")
    fill = METHODS[method]
    return fill(image.astype(np.float32), hole, seed=seed) if method in SEEDED else fill(image.astype(np.float32), hole)
