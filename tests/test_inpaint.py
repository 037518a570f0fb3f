"""Background completion methods on small synthetic images (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.ops.inpainting import METHODS, inpaint, match_boundary
from layerkit.ops.inpainting.patchmatch import inpaint_exemplar

ALL = sorted(METHODS)
SMOOTH = ["harmonic", "pushpull", "biharmonic", "telea", "ns"]


def gradient(h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth ``h×w×3`` colour ramp in [0.1, 0.9]."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    return np.stack([0.1 + 0.8 * xx / (w - 1), 0.1 + 0.8 * yy / (h - 1), 0.5 + 0.2 * (xx - yy) / (w + h)], axis=2)


def disc(h: int = 48, w: int = 64, r: float = 10.0, cy: float = 24.0, cx: float = 30.0) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def stripes(h: int = 64, w: int = 64) -> np.ndarray:
    """Vertical period-8 stripes (a texture that exemplar methods can continue)."""
    xx = np.arange(w)[None, :].repeat(h, 0)
    v = np.where((xx // 4) % 2 == 0, 0.2, 0.8).astype(np.float32)
    return np.stack([v, v * 0.5 + 0.2, 1.0 - v], axis=2)


@pytest.mark.parametrize("method", ALL)
def test_constant_image_is_filled_exactly(method: str) -> None:
    img = np.full((40, 52, 3), [0.2, 0.6, 0.4], np.float32)
    hole = disc(40, 52, 9, 20, 26)
    out = inpaint(img, hole, method)
    tol = 2.5 / 255 if method in ("telea", "ns") else 1e-5  # OpenCV works on 8-bit data
    assert np.abs(out - img).max() <= tol


@pytest.mark.parametrize("method", ALL)
def test_shape_dtype_and_known_pixels_unchanged(method: str) -> None:
    rng = np.random.default_rng(0)
    img = np.clip(gradient() + rng.normal(0, 0.05, (48, 64, 3)), 0, 1).astype(np.float64)  # float64 in
    hole = disc()
    out = inpaint(img, hole, method)
    assert out.shape == (48, 64, 3) and out.dtype == np.float32
    assert np.array_equal(out[~hole], img[~hole].astype(np.float32))
    assert np.isfinite(out).all() and out.min() >= -1e-6 and out.max() <= 1 + 1e-6


@pytest.mark.parametrize("method", SMOOTH)
def test_smooth_gradient_fill_error_is_small(method: str) -> None:
    img = gradient()
    hole = disc()
    out = inpaint(img, hole, method)
    err = np.abs(out - img)[hole]
    limit = 0.03 if method in ("telea", "ns") else 0.02  # OpenCV's fills bend along isophotes
    assert err.mean() < limit, f"{method}: mean error {err.mean():.4f}"


def test_harmonic_reproduces_a_linear_ramp() -> None:
    """A linear function is harmonic, so the membrane fill recovers it almost exactly."""
    img = gradient()
    hole = np.zeros((48, 64), bool)
    hole[10:38, 12:50] = True
    out = inpaint(img, hole, "harmonic")
    assert np.abs(out - img)[hole].max() < 0.02


@pytest.mark.parametrize("method", ["exemplar", "texture"])
def test_exemplar_continues_a_texture(method: str) -> None:
    img = stripes()
    hole = np.zeros((64, 64), bool)
    hole[24:40, 20:44] = True
    out = inpaint(img, hole, method)
    err_tex = np.abs(out - img)[hole].mean()
    err_smooth = np.abs(inpaint(img, hole, "harmonic") - img)[hole].mean()
    assert err_tex < err_smooth, f"{method} ({err_tex:.3f}) should beat the smooth fill ({err_smooth:.3f}) on stripes"


def test_exemplar_is_deterministic_and_copies_visible_colours() -> None:
    img = stripes()
    hole = np.zeros((64, 64), bool)
    hole[20:36, 18:40] = True
    a = inpaint_exemplar(img, hole, seed=3)
    b = inpaint_exemplar(img, hole, seed=3)
    assert np.array_equal(a, b)
    # votes average copied pixels, so the fill stays inside the range of the visible colours
    assert a[hole].min() >= img[~hole].min() - 1e-6 and a[hole].max() <= img[~hole].max() + 1e-6


def test_exemplar_falls_back_when_no_source_patch_fits() -> None:
    img = gradient(16, 16)
    hole = np.zeros((16, 16), bool)
    hole[3:13, 3:13] = True  # no 7×7 patch lies entirely outside this hole
    out = inpaint_exemplar(img, hole)
    assert np.isfinite(out).all() and np.array_equal(out[~hole], img[~hole])


def test_exemplar_rejects_even_patch() -> None:
    with pytest.raises(ValueError, match="odd"):
        inpaint_exemplar(gradient(), disc(), patch_size=6)


@pytest.mark.parametrize("method", ALL)
def test_empty_hole_returns_input(method: str) -> None:
    img = gradient()
    out = inpaint(img, np.zeros((48, 64), bool), method)
    assert out.dtype == np.float32 and np.array_equal(out, img)


@pytest.mark.parametrize(("method", "limit"), [("harmonic", 0.05), ("biharmonic", 0.05), ("pushpull", 0.08), ("exemplar", 0.2)])
def test_hole_touching_the_border_and_odd_size(method: str, limit: float) -> None:
    img = gradient(37, 53)
    hole = np.zeros((37, 53), bool)
    hole[:15, 40:] = True  # corner hole, odd image size
    out = inpaint(img, hole, method)
    assert np.isfinite(out).all() and np.array_equal(out[~hole], img[~hole])
    assert np.abs(out - img)[hole].mean() < limit  # a copied patch cannot follow a ramp: loose for exemplar


def test_unknown_method_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown inpainting method 'bogus'; valid: .*harmonic.*telea"):
        inpaint(gradient(), disc(), "bogus")


def test_bad_shapes_and_full_hole_raise() -> None:
    with pytest.raises(ValueError, match="H×W×C image and an H×W hole"):
        inpaint(gradient(), np.zeros((10, 10), bool), "harmonic")
    with pytest.raises(ValueError, match="H×W×C image"):
        inpaint(gradient()[..., 0], disc(), "harmonic")
    with pytest.raises(ValueError, match="covers every pixel"):
        inpaint(gradient(), np.ones((48, 64), bool), "harmonic")


def test_match_boundary_makes_a_coarse_fill_seamless() -> None:
    img = gradient()
    hole = disc()
    fill = np.full_like(img, 0.5)  # a flat proposal that does not meet the boundary
    out = match_boundary(img, hole, fill)
    assert np.array_equal(out[~hole], img[~hole])
    assert np.abs(out - img)[hole].mean() < 0.02
