"""Metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layerkit.evaluation import metrics as M


def test_sad_and_mse_by_hand() -> None:
    pred = np.array([[0.0, 0.5], [1.0, 1.0]])
    gt = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert M.sad(pred, gt) == pytest.approx((0.5 + 1.0) / 1000)
    assert M.mse(pred, gt) == pytest.approx((0.25 + 1.0) / 4)
    region = np.array([[False, True], [True, False]])
    assert M.sad(pred, gt, region) == pytest.approx(0.5 / 1000)
    assert M.mse(pred, gt, region) == pytest.approx(0.25 / 2)
    assert math.isnan(M.mse(pred, gt, np.zeros((2, 2), bool)))
    assert M.sad(pred, gt, np.zeros((2, 2), bool)) == 0.0


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="one size"):
        M.sad(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="region"):
        M.sad(np.zeros((2, 2)), np.zeros((2, 2)), np.ones((3, 3), bool))


def test_soft_iou_by_hand_and_edge_cases() -> None:
    assert M.soft_iou(np.array([[0.2, 0.8]]), np.array([[0.4, 0.4]])) == pytest.approx((0.2 + 0.4) / (0.4 + 0.8))
    zeros, ones = np.zeros((3, 3)), np.ones((3, 3))
    assert M.soft_iou(zeros, zeros) == 1.0              # both empty: identical
    assert M.soft_iou(zeros, zeros, empty=0.0) == 0.0   # LayerD's convention
    assert M.soft_iou(ones, ones) == 1.0
    assert M.soft_iou(ones, zeros) == 0.0


def test_kernels_follow_the_dim_definition() -> None:
    g, dg = M.gaussian_gradient_kernels(1.4)
    # halfsize = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(3.62) = 4
    assert g.shape == dg.shape == (9,)
    assert np.linalg.norm(np.outer(g, dg)) == pytest.approx(1.0)
    assert np.allclose(dg, -dg[::-1]) and dg[4] == 0.0 and dg[3] > 0  # -u·g(u): positive for u < 0
    assert np.allclose(g, g[::-1])


def _reference_gradient(a: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """The DIM gaussgradient written out literally: 2-D kernel by loops, replicate pad, true convolution."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 1e-2)))
    size = 2 * half + 1

    def gauss(x: float) -> float:
        return math.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))

    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            hx[i, j] = gauss(i - half) * (-(j - half) * gauss(j - half) / sigma ** 2)
    hx /= math.sqrt((hx ** 2).sum())
    hy = hx.T
    p = np.pad(a, half, mode="edge")
    gx, gy = np.zeros_like(a), np.zeros_like(a)
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            win = p[y:y + size, x:x + size][::-1, ::-1]  # convolution flips the kernel
            gx[y, x], gy[y, x] = (win * hx).sum(), (win * hy).sum()
    return np.sqrt(gx ** 2 + gy ** 2)


def test_gradient_magnitude_matches_literal_reference() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((7, 10))
    assert np.allclose(M.gradient_magnitude(a), _reference_gradient(a), atol=1e-12)


def test_gradient_error_by_hand() -> None:
    flat0, flat1 = np.zeros((6, 6)), np.full((6, 6), 0.7)
    assert M.gradient_error(flat0, flat1) == 0.0  # constant images have no gradient
    step = np.zeros((6, 6))
    step[:, 3:] = 1.0
    expected = (M.gradient_magnitude(step) ** 2).sum() / 1000
    assert M.gradient_error(step, flat0) == pytest.approx(expected)
    assert M.gradient_error(step, step) == 0.0


def test_connectivity_all_missing_counts_every_gt_pixel() -> None:
    # pred = 0 everywhere: every level is 0, φ(pred) = 1, φ(gt) = 1 − gt where gt ≥ 0.15.
    gt = np.zeros((5, 5))
    gt[1:3, 1:4] = 1.0
    assert M.connectivity_error(np.zeros((5, 5)), gt) == pytest.approx(6 / 1000)


def test_connectivity_penalises_a_disconnected_blob_only() -> None:
    gt = np.zeros((8, 8))
    gt[0:4, 0:4] = 1.0   # main blob, 16 px, also predicted
    gt[6:8, 6:8] = 1.0   # island, 4 px, missing in the prediction
    pred = np.zeros((8, 8))
    pred[0:4, 0:4] = 1.0
    assert M.connectivity_error(pred, gt) == pytest.approx(4 / 1000)
    soft = gt.copy()
    soft[6:8, 6:8] = 0.5  # island at alpha 0.5: d = 0.5 ≥ 0.15, φ = 0.5 → error 0.5 per pixel
    assert M.connectivity_error(pred, soft) == pytest.approx(4 * 0.5 / 1000)
    assert M.connectivity_error(gt, gt) == 0.0
    region = np.zeros((8, 8), bool)
    region[6, 6] = True
    assert M.connectivity_error(pred, gt, region) == pytest.approx(1 / 1000)


def test_connectivity_empty_and_full() -> None:
    zeros, ones = np.zeros((4, 4)), np.ones((4, 4))
    assert M.connectivity_error(zeros, zeros) == 0.0
    assert M.connectivity_error(ones, ones) == 0.0
    assert M.connectivity_error(zeros, ones) == pytest.approx(16 / 1000)


def test_weighted_l1_by_hand() -> None:
    f = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    f_gt = np.zeros((1, 2, 3))
    assert M.weighted_l1(f, f_gt, np.array([[1.0, 0.0]])) == pytest.approx(1 / 3)
    assert M.weighted_l1(f, f_gt, np.array([[0.5, 1.0]])) == pytest.approx(0.5 / (3 * 1.5))
    assert math.isnan(M.weighted_l1(f, f_gt, np.zeros((1, 2))))


def test_masked_l1_by_hand() -> None:
    a = np.array([[[0.3, 0.6, 0.9], [1.0, 1.0, 1.0]]])
    b = np.zeros((1, 2, 3))
    assert M.masked_l1(a, b, np.array([[True, False]])) == pytest.approx(0.6)
    assert M.masked_l1(a, b, np.zeros((1, 2), bool)) == 0.0


def test_psnr_by_hand() -> None:
    a = np.zeros((4, 4, 3))
    assert M.psnr_db(a, a) == M.PSNR_CAP_DB
    assert M.psnr_db(a + 0.1, a) == pytest.approx(20.0)  # MSE 0.01
    assert math.isnan(M.psnr_db(a, a, np.zeros((4, 4), bool)))


def test_alpha_metrics_bundle() -> None:
    gt = np.zeros((6, 6))
    gt[2:4, 2:4] = 1.0
    out = M.alpha_metrics(gt, gt, connectivity=True)
    assert out == {"sad": 0.0, "mse_e3": 0.0, "grad": 0.0, "conn": 0.0}
    out = M.alpha_metrics(np.zeros((6, 6)), gt)
    assert out["sad"] == pytest.approx(4 / 1000) and out["mse_e3"] == pytest.approx(4 / 36 * 1e3)
    assert "conn" not in out
