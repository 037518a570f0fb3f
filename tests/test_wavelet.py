"""The weight-free high-frequency alignment (``refiner.backend=wavelet``)."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import Pipeline
from layerkit.errors import ConfigError
from layerkit.modules.refiner.wavelet import WaveletRefiner, transfer_high_frequencies


def _edge_scene(h: int = 32, w: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured background, an opaque flat object from column 13 on (mid-block for 2 Haar
    levels), and a smooth background estimate."""
    rng = np.random.default_rng(0)
    bg = (0.5 + 0.1 * rng.standard_normal((h, w, 3))).astype(np.float32)
    alpha = np.zeros((h, w), np.float32)
    alpha[:, 13:] = 1.0
    image = np.where(alpha[..., None] > 0, np.float32(0.9), bg)
    smooth = np.full((h, w, 3), 0.5, np.float32)
    return image, alpha, smooth


def test_a_hard_edge_does_not_leak_into_the_other_layer():
    image, alpha, smooth = _edge_scene()
    vis = (1 - alpha)[..., None]
    hidden = alpha > 0  # the background under the object: no detail of C belongs there
    leak_min = np.abs(transfer_high_frequencies(smooth, image, vis, 2, "min") - smooth)[hidden].max()
    leak_mean = np.abs(transfer_high_frequencies(smooth, image, vis, 2, "mean") - smooth)[hidden].max()
    assert leak_min < 1e-6
    assert leak_mean > 0.05  # the averaged weight takes the edge into the hidden background


def test_detail_is_restored_where_the_layer_is_visible():
    image, alpha, smooth = _edge_scene()
    out = transfer_high_frequencies(smooth, image, (1 - alpha)[..., None], 2, "min")
    visible = np.zeros_like(alpha, bool)
    visible[:, :12] = True  # whole Haar blocks of background only
    err_before = np.abs(smooth - image)[visible].mean()
    err_after = np.abs(out - image)[visible].mean()
    assert err_after < 0.5 * err_before


def test_copy_rule_and_range():
    image, alpha, smooth = _edge_scene()
    f, b = WaveletRefiner()(image, alpha, smooth, smooth)
    np.testing.assert_array_equal(f[alpha >= 0.999], image[alpha >= 0.999])
    np.testing.assert_array_equal(b[alpha <= 0.001], image[alpha <= 0.001])
    assert f.min() >= 0 and b.max() <= 1


def test_bad_pool_names_the_key():
    with pytest.raises(ConfigError, match=r"refiner\.pool"):
        Pipeline.from_config("classical", ["refiner.pool=max"])
