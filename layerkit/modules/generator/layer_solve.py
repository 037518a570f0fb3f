"""Layers from a generated picture when one layer is known exactly (LASAGNA's FG / BG modes).

* :func:`layer_over_known_background`: a picture ``C`` repainted inside a region over a known
  background ``B`` → the object layer ``(α, F)`` with ``B`` kept pixel-exact. ``α`` is the
  object's matte, raised to the smallest alpha that explains ``C`` over ``B`` wherever ``C``
  differs from ``B`` by more than the noise floor (a painted shadow or reflection: dark or
  bright semi-transparent pixels), and ``F`` is solved against ``B``.
* :func:`pad_to_multiple` / :func:`crop_to`: diffusion models need sides that are multiples
  of 8; the known layer is padded by edge replication and the result cropped back, so the
  known pixels are never resampled.
"""

from __future__ import annotations

import numpy as np

from layerkit.ops.compositing import solve_foreground


def min_alpha_over(image: np.ndarray, background: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Smallest ``α`` per pixel with ``C = α·F + (1 − α)·B`` for some ``F`` in ``[0, 1]``.

    Per channel: ``(C − B)/(1 − B)`` where ``C > B`` (``F = 1``), ``(B − C)/B`` where ``C < B``
    (``F = 0``); the largest over the channels.

    Args:
        image: ``H×W×3`` picture ``C``.
        background: ``H×W×3`` known background ``B``.

    Returns:
        ``H×W`` float32 in ``[0, 1]``.
    """
    c, b = image.astype(np.float32), background.astype(np.float32)
    up = np.where(c > b, (c - b) / np.maximum(1.0 - b, eps), 0.0)
    down = np.where(c < b, (b - c) / np.maximum(b, eps), 0.0)
    return np.clip(np.maximum(up, down).max(axis=2), 0.0, 1.0).astype(np.float32)


def layer_over_known_background(image: np.ndarray, background: np.ndarray, object_alpha: np.ndarray,
                                region: np.ndarray, noise: float = 0.06) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object layer of a picture repainted over a known background; the background stays exact.

    Args:
        image: ``H×W×3`` the repainted picture ``C``.
        background: ``H×W×3`` the known background ``B``.
        object_alpha: ``H×W`` matte of the new object (from the segmenter and matter).
        region: ``H×W`` bool, where ``C`` was repainted (outside it ``C = B``).
        noise: differences below this minimal alpha count as regeneration noise, not as layer.

    Returns:
        ``(alpha, F, composite)``: the layer's ``H×W`` alpha and ``H×W×3`` straight colour and the
        stack's composite ``α·F + (1 − α)·B`` (equal to ``C`` wherever ``α`` is not 0).
    """
    a_min = np.where(region, min_alpha_over(image, background), 0.0)
    a_min = np.where(a_min >= noise, a_min, 0.0)
    alpha = np.clip(np.maximum(object_alpha.astype(np.float32), a_min), 0.0, 1.0).astype(np.float32)
    fg = solve_foreground(image, alpha, background, min_alpha=1e-3)
    fg = np.where(alpha[..., None] > 0, fg, 0.0).astype(np.float32)
    comp = (alpha[..., None] * fg + (1.0 - alpha[..., None]) * background).astype(np.float32)
    return alpha, fg, comp


def pad_to_multiple(image: np.ndarray, k: int = 8) -> np.ndarray:
    """Pad ``H×W×C`` by edge replication on the bottom/right to multiples of ``k``."""
    h, w = image.shape[:2]
    ph, pw = (-h) % k, (-w) % k
    if not ph and not pw:
        return image
    return np.pad(image, ((0, ph), (0, pw)) + ((0, 0),) * (image.ndim - 2), mode="edge")


def crop_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The top-left ``size = (H, W)`` part of an array."""
    return np.ascontiguousarray(image[: size[0], : size[1]])
