"""Data model: Prompt validation, Layer, LayerStack compositing."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.errors import PromptError
from layerkit.ops.compositing import composite as compose
from layerkit.ops.compositing import over, solve_foreground, solve_layers
from layerkit.types import Layer, LayerStack, Prompt, alpha_bbox


def test_prompt_normalises_shapes():
    p = Prompt(points=[10, 20], boxes=[1, 2, 30, 40])
    assert p.points.shape == (1, 2) and p.labels.tolist() == [1]
    assert p.boxes.shape == (1, 4)
    assert p.bbox() == (1, 2, 30, 40)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "empty prompt"),
    ({"boxes": [[30, 2, 10, 40]]}, "inverted or has zero area"),
    ({"boxes": [[10, 10, 10, 40]]}, "inverted or has zero area"),
    ({"points": [[1, 2]], "labels": [2]}, "labels must be"),
    ({"points": [[1, 2, 3]]}, "N×2"),
    ({"mask": np.zeros((8, 8), bool)}, "mask is empty"),
    ({"labels": [1]}, "without points"),
])
def test_prompt_rejects_bad_input(kwargs, match):
    with pytest.raises(PromptError, match=match):
        Prompt(**kwargs)


@pytest.mark.parametrize("prompt, match", [
    (Prompt(points=[[64, 5]]), "outside the 64x48 image"),
    (Prompt(points=[[-1, 5]]), "outside"),
    (Prompt(boxes=[[10, 10, 65, 20]]), "outside the 64x48 image"),
    (Prompt(boxes=[[100, 100, 120, 130]]), "outside"),
    (Prompt(mask=np.ones((10, 10), bool)), "mask is 10x10 but the image is 64x48"),
])
def test_prompt_validate_against_image(prompt, match):
    with pytest.raises(PromptError, match=match):
        prompt.validate(48, 64)


def test_prompt_shift_and_dict():
    mask = np.zeros((48, 64), bool)
    mask[10:20, 30:40] = True
    p = Prompt(points=[[35, 15], [1, 1]], labels=[1, 0], boxes=[[28, 8, 42, 22]], mask=mask, text=" dog ")
    assert p.text == "dog"
    q = p.shifted(20, 5, (30, 40))
    assert q.points.tolist() == [[15, 10], [-19, -4]]
    assert q.boxes.tolist() == [[8, 3, 22, 17]]
    assert q.mask.shape == (30, 40) and q.mask.sum() == 100
    d = p.to_dict()
    assert d["mask_bbox"] == [30, 10, 40, 20] and d["labels"] == [1, 0] and d["text"] == "dog"


def test_over_matches_formula():
    rng = np.random.default_rng(0)
    top = rng.random((5, 6, 4)).astype(np.float32)
    bottom = rng.random((5, 6, 3)).astype(np.float32)
    out = over(top, bottom)
    a = top[..., 3:4]
    np.testing.assert_allclose(out, a * top[..., :3] + (1 - a) * bottom, atol=1e-6)
    # over two RGBA layers is associative with an opaque base
    mid = rng.random((5, 6, 4)).astype(np.float32)
    left = over(top, over(mid, bottom))
    right = over(over(top, mid), bottom)
    np.testing.assert_allclose(left, right, atol=1e-5)


def test_layerstack_composite_exact(composite):
    bg = Layer.from_rgb(composite["bg"], name="background")
    fg = Layer.from_rgb(composite["fg"], composite["alpha"], name="disc")
    stack = LayerStack([bg, fg])
    out = stack.composite()
    assert out.shape == composite["image"].shape
    np.testing.assert_allclose(out, composite["image"], atol=1e-6)
    fg.visible = False
    np.testing.assert_allclose(stack.composite(), composite["bg"], atol=1e-6)


def test_layerstack_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="share one size"):
        LayerStack([Layer(np.zeros((4, 4, 4))), Layer(np.zeros((5, 4, 4)))])


def test_layer_bbox_and_alpha_bbox():
    rgba = np.zeros((10, 12, 4), np.float32)
    rgba[2:5, 3:9, 3] = 0.5
    assert Layer(rgba).bbox == (3, 2, 9, 5)
    assert alpha_bbox(np.zeros((3, 3))) is None


def test_solve_foreground_recomposes(composite):
    c, a, b = composite["image"], composite["alpha"], composite["bg"]
    f = solve_foreground(c, a, b)
    err = np.abs(a[..., None] * f + (1 - a[..., None]) * b - c)
    assert err[a > 1e-3].max() < 1e-5
    np.testing.assert_allclose(compose(f, a, b)[a > 1e-3], c[a > 1e-3], atol=1e-5)


def test_solve_layers_moves_the_background_where_f_would_clip(composite):
    c, a = composite["image"], composite["alpha"]
    rng = np.random.default_rng(0)
    b_est = np.clip(composite["bg"] + rng.normal(0, 0.4, c.shape), 0, 1).astype(np.float32)  # contradicts C
    clipped = solve_foreground(c, a, b_est)
    err_before = np.abs(compose(clipped, a, b_est) - c)[a > 1e-3].max()
    f, b = solve_layers(c, a, b_est, background_below=1.0)
    assert err_before > 0.2  # the clipped F alone cannot recompose C
    assert np.abs(compose(f, a, b) - c)[a > 1e-3].max() < 1e-5
    f_half, b_half = solve_layers(c, a, b_est)  # default: B moves only where the layer is mostly transparent
    np.testing.assert_array_equal(b_half[a >= 0.5], b_est[a >= 0.5])
    np.testing.assert_array_equal(b_half[a < 0.5], b[a < 0.5])
    np.testing.assert_array_equal(f_half, f)
    assert f.min() >= 0 and f.max() <= 1 and b.min() >= 0 and b.max() <= 1
    raw = (c - (1 - a[..., None]) * b_est) / np.maximum(a[..., None], 1e-3)
    feasible = ((raw >= 0) & (raw <= 1)).all(-1) | (a < 1e-3)
    np.testing.assert_array_equal(b[feasible], b_est[feasible])  # B moves only where F had to clip
    moved = ~feasible & (a < 1)
    assert moved.any()
    lo, hi = np.minimum(b_est, c), np.maximum(b_est, c)
    assert ((b[moved] >= lo[moved] - 1e-6) & (b[moved] <= hi[moved] + 1e-6)).all()  # between the estimate and C


def test_layerstack_edit_methods_delegate(composite):
    from layerkit.errors import EditError

    stack = LayerStack([Layer.from_rgb(composite["bg"], name="background"),
                        Layer.from_rgb(composite["fg"], composite["alpha"], name="disc")])
    moved = stack.move("disc", 5, -3)
    np.testing.assert_array_equal(moved[1].alpha[:-3, 5:], stack[1].alpha[3:, :-5])  # dy < 0: up
    assert len(stack.duplicate(1, dx=10)) == 3
    assert stack.hide("disc")[1].visible is False and stack[1].visible is True
    np.testing.assert_array_equal(stack.recolor(1, hue=40)[1].alpha, stack[1].alpha)
    assert stack.remove(1).names == ["background"]
    with pytest.raises(EditError, match="no layer named 'lamp'"):
        stack.move("lamp", 1, 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_layer_rejects_non_finite_values(bad):
    rgba = np.zeros((4, 5, 4), np.float32)
    rgba[1, 2, 3] = bad
    with pytest.raises(ValueError, match=r"Layer 'obj': rgba holds 1 NaN/infinite values"):
        Layer(rgba, name="obj")
    rgba[1, 2, 3] = 2.0  # finite out-of-range values are clipped, as before
    assert Layer(rgba).alpha.max() == 1.0
