"""Colour histograms of image regions (numpy/scipy), shared by the weight-free stages.

Colours are quantised to ``bins`` levels per RGB channel, so a histogram has ``bins³`` cells;
smoothing spreads each count over neighbouring cells so that a colour seen once still has
non-zero mass next to it.
"""

from __future__ import annotations

import numpy as np


def colour_index(image: np.ndarray, bins: int) -> np.ndarray:
    """Per pixel, the index of its cell in a ``bins³`` RGB histogram (``image`` in ``[0, 1]``)."""
    q = (np.clip(image, 0, 1) * (bins - 1e-3)).astype(np.int32)
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def region_histogram(index: np.ndarray, region: np.ndarray, bins: int, sigma: float = 0.0, prior: float = 0.0) -> np.ndarray:
    """Normalised colour histogram (flat, ``bins³``) of the pixels in ``region``.

    Args:
        index: from :func:`colour_index`.
        region: ``H×W`` bool.
        bins: levels per channel used for ``index``.
        sigma: Gaussian smoothing in cells (0: none).
        prior: count added to every cell before normalising (additive smoothing; 0: none).

    Returns:
        Histogram summing to 1 (all zeros for an empty region without ``prior``).
    """
    h = np.bincount(index[region], minlength=bins ** 3).astype(np.float64) + prior
    if sigma > 0:
        from scipy.ndimage import gaussian_filter

        h = gaussian_filter(h.reshape((bins,) * 3), sigma).ravel()
    total = h.sum()
    return h / total if total > 0 else h
