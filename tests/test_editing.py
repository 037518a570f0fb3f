"""Editing by compositing only: every operation, index stability, bad references, the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import editing as E
from layerkit.cli import main
from layerkit.editing import Edit, EditError, apply_edits
from layerkit.types import Layer, LayerStack


def make_stack() -> LayerStack:
    """Background + three soft-edged object layers (64×96)."""
    h, w = 64, 96
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    bg = np.stack([0.2 + 0.5 * xx / w, 0.4 + 0.2 * yy / h, 0.5 + 0 * xx], axis=2)
    layers = [Layer.from_rgb(bg, name="background")]
    for name, (cx, cy, r), col in (("red", (25, 25, 10), (0.9, 0.1, 0.1)), ("blue", (50, 35, 12), (0.1, 0.2, 0.9)),
                                   ("yellow", (70, 20, 8), (0.9, 0.8, 0.1))):
        a = np.clip(r - np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) + 0.5, 0, 1).astype(np.float32)
        layers.append(Layer(np.concatenate([np.broadcast_to(np.float32(col), (h, w, 3)) * (a[..., None] > 0), a[..., None]], 2),
                            name=name))
    return LayerStack(layers)


@pytest.fixture
def stack() -> LayerStack:
    return make_stack()


def test_integer_move_is_bit_exact_and_leaves_other_layers_alone(stack):
    out = E.move(stack, 2, 7, -5)
    np.testing.assert_array_equal(out[2].rgba[:-5, 7:], stack[2].rgba[5:, :-7])
    for i in (0, 1, 3):
        np.testing.assert_array_equal(out[i].rgba, stack[i].rgba)
    assert out[2].bbox == (stack[2].bbox[0] + 7, stack[2].bbox[1] - 5, stack[2].bbox[2] + 7, stack[2].bbox[3] - 5)
    np.testing.assert_array_equal(stack[2].rgba, make_stack()[2].rgba)  # the input is never modified
    far = E.move(stack, "red", 500, 0)
    assert far[1].bbox is None


def test_fractional_move_resamples_and_keeps_mass(stack):
    out = E.move(stack, 1, 2.5, 0)
    assert out[1].alpha.sum() == pytest.approx(stack[1].alpha.sum(), rel=1e-3)
    assert set(np.unique(out[1].alpha)) - set(np.unique(stack[1].alpha))  # new (interpolated) values


def test_scale_and_rotate_about_the_layer_centre(stack):
    big = E.scale(stack, 2, 1.5)
    x0, y0, x1, y1 = stack[2].bbox
    bx0, by0, bx1, by1 = big[2].bbox
    assert (bx1 - bx0) == pytest.approx(1.5 * (x1 - x0), abs=2) and (bx0 + bx1) / 2 == pytest.approx((x0 + x1) / 2, abs=1)
    small = E.scale(stack, 2, 0.5)
    assert small[2].alpha.sum() == pytest.approx(stack[2].alpha.sum() / 4, rel=0.05)
    assert np.allclose(small[2].rgb[small[2].alpha > 0.05], [0.1, 0.2, 0.9], atol=1e-3)  # no dark fringe
    wide = Layer(np.zeros((64, 96, 4), np.float32), name="bar")
    wide.rgba[30:34, 20:60] = 1.0
    rot = E.rotate(LayerStack([stack[0], Layer(wide.rgba, name="bar")]), 1, 90)
    rx0, ry0, rx1, ry1 = rot[1].bbox
    assert (ry1 - ry0) > 35 and (rx1 - rx0) < 8
    with pytest.raises(EditError, match="positive"):
        E.scale(stack, 1, 0)


def test_recolor_keeps_alpha_exactly(stack):
    out = E.recolor(stack, "red", hue=120)
    np.testing.assert_array_equal(out[1].alpha, stack[1].alpha)
    inside = stack[1].alpha > 0.5
    assert out[1].rgb[inside][:, 1].mean() > 0.8 and out[1].rgb[inside][:, 0].mean() < 0.2  # red → green
    grey = E.recolor(stack, 0, saturation=0.0, brightness=1.0)
    assert np.allclose(grey[0].rgb[..., 0], grey[0].rgb[..., 1], atol=1e-5)
    with pytest.raises(EditError, match=">= 0"):
        E.recolor(stack, 1, saturation=-1)


def test_duplicate_remove_reorder_hide_merge(stack):
    dup = E.duplicate(stack, 1, 40, 0)
    assert dup.names == ["background", "red", "red copy", "blue", "yellow"]
    np.testing.assert_array_equal(dup[2].rgba[:, 40:], stack[1].rgba[:, :-40])
    rem = E.remove(stack, "blue")
    assert rem.names == ["background", "red", "yellow"]
    ro = E.reorder(stack, 3, 1)
    assert ro.names == ["background", "yellow", "red", "blue"]
    assert E.reorder(stack, 1, -1).names == ["background", "blue", "yellow", "red"]
    hid = E.hide(stack, 2)
    assert not hid[2].visible and E.show(hid, 2)[2].visible
    np.testing.assert_allclose(hid.composite(), E.remove(stack, 2).composite())
    merged = E.merge(stack, 1, 3)
    assert merged.names == ["background", "red+blue+yellow"]
    np.testing.assert_allclose(merged.composite(), stack.composite(), atol=1e-5)
    flat = E.merge(stack, 0, 3)
    assert len(flat) == 1 and np.all(flat[0].alpha == 1.0)


def test_background_cannot_be_moved_or_removed(stack):
    for fn, args in ((E.move, (0, 1, 1)), (E.scale, (0, 2.0)), (E.rotate, (0, 10)), (E.remove, (0,)),
                     (E.duplicate, (0,)), (E.reorder, (0, 2))):
        with pytest.raises(EditError, match="background"):
            fn(stack, *args)
    with pytest.raises(EditError, match="outside 1..3"):
        E.reorder(stack, 1, 0)


def test_missing_layers_are_clear_errors(stack):
    with pytest.raises(EditError, match=r"layer 7 does not exist; the stack has 4 layers \(0..3\): 0=background"):
        E.move(stack, 7, 1, 1)
    with pytest.raises(EditError, match="no layer named 'lamp'"):
        E.recolor(stack, "lamp", hue=10)
    twin = LayerStack([*stack.layers, Layer(stack[1].rgba, name="red")])
    with pytest.raises(EditError, match="ambiguous"):
        E.hide(twin, "red")
    with pytest.raises(EditError, match="reversed"):
        E.merge(stack, 3, 1)


def test_apply_edits_keeps_indices_of_the_stack_as_loaded(stack):
    out = apply_edits(stack, [Edit("remove", 1), Edit("move", 3, {"dx": 4, "dy": 0}), Edit("duplicate", 2, {"dx": 10, "dy": 0}),
                              Edit("recolor", 3, {"hue": 30})])
    assert out.names == ["background", "blue", "blue copy", "yellow"]
    np.testing.assert_array_equal(out[3].alpha[:, 4:], stack[3].alpha[:, :-4])
    with pytest.raises(EditError, match="removed or merged by an earlier edit"):
        apply_edits(stack, [Edit("remove", 2), Edit("hide", 2)])
    with pytest.raises(EditError, match="had 4 layers"):
        apply_edits(stack, [Edit("hide", 9)])
    with pytest.raises(EditError, match="unknown edit"):
        apply_edits(stack, [Edit("blur", 1)])
    reordered = apply_edits(stack, [Edit("reorder", 1, {"position": 3}), Edit("recolor", 1, {"brightness": 0.5})])
    assert reordered.names == ["background", "blue", "yellow", "red"]
    assert reordered[3].rgb.max() < stack[1].rgb.max()
    merged = apply_edits(stack, [Edit("merge", 1, {"last": 2}), Edit("move", 3, {"dx": 1, "dy": 1})])
    assert merged.names == ["background", "red+blue", "yellow"]


def test_cli_edit_writes_a_composite_or_a_stack(tmp_path, stack):
    src = tmp_path / "stack"
    stack.save(src)
    png = tmp_path / "edited.png"
    rc = main(["edit", str(src), "--move", "2:+4,-3", "--scale", "1:1.2", "--recolor", "blue:hue=30,sat=1.1",
               "--duplicate", "1:+20,0", "--remove", "3", "--rotate", "1:10", "-o", str(png)])
    assert rc == 0 and png.is_file()
    from layerkit.io.image import load_image

    assert load_image(png).shape == (64, 96, 3)
    psd = tmp_path / "edited.psd"
    assert main(["edit", str(src), "--reorder", "1:-1", "--merge", "2-3", "--hide", "1", "-o", str(psd)]) == 0
    back = LayerStack.load(psd)
    assert back.names == ["background", "blue+yellow", "red"] and not back[2].visible


def test_cli_edit_bad_input_exits_2_without_output(tmp_path, stack, capsys):
    src = tmp_path / "stack"
    stack.save(src)
    out = tmp_path / "x.png"
    assert main(["edit", str(src), "--move", "9:1,1", "-o", str(out)]) == 2
    assert "layer 9 does not exist" in capsys.readouterr().err and not out.exists()
    for bad in (["--move", "1:abc"], ["--recolor", "1:tint=3"], ["--merge", "1"], ["--remove", "1:2"], ["--scale", "1"], []):
        assert main(["edit", str(src), *bad, "-o", str(out)]) == 2
        assert not out.exists()


def test_cli_edit_takes_the_layer_and_its_value_as_two_words(tmp_path, stack, capsys):
    src = tmp_path / "stack"
    stack.save(src)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["edit", str(src), "--move", "1", "8,0", "--scale", "2", "1.2", "-o", str(a)]) == 0
    assert main(["edit", str(src), "--move", "1:8,0", "--scale", "2:1.2", "-o", str(b)]) == 0
    from layerkit.io.image import load_image

    np.testing.assert_array_equal(load_image(a), load_image(b))
    capsys.readouterr()
    out = tmp_path / "c.png"
    for bad, msg in ((["--move", "1", "8,0", "extra"], "got 3 values"), (["--move", "1:2,2", "8,0"], "got 2 values")):
        assert main(["edit", str(src), *bad, "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
        assert not out.exists()
