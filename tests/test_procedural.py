"""Licence-clean procedural objects and backgrounds (``layerkit/training/procedural.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.training.procedural import SHAPES, background_rgb, object_rgba


@pytest.mark.parametrize("kind", SHAPES)
def test_objects_follow_the_dev_foreground_convention(kind: str) -> None:
    o = object_rgba(np.random.default_rng(3), size=96, kind=kind)
    assert o.dtype == np.uint8 and o.ndim == 3 and o.shape[2] == 4
    a = o[..., 3]
    assert (o[..., :3][a == 0] == 0).all()  # straight RGBA, RGB = 0 where alpha = 0
    ys, xs = np.nonzero(a)
    assert ys.min() == 2 and xs.min() == 2  # cropped to the alpha > 0 box plus 2 px
    assert o.shape[0] - 1 - ys.max() <= 2 and o.shape[1] - 1 - xs.max() <= 2
    assert (a == 255).mean() > 0.05  # a solid object, not a haze
    assert np.ptp(o[..., :3][a == 255], axis=0).max() > 10  # textured or shaded, not one flat colour


def test_objects_are_seeded_and_vary() -> None:
    a, b = object_rgba(np.random.default_rng(5)), object_rgba(np.random.default_rng(5))
    assert np.array_equal(a, b)
    shapes = {object_rgba(np.random.default_rng(s)).shape for s in range(6)}
    assert len(shapes) > 1


def test_two_part_objects_have_two_colours() -> None:
    o = object_rgba(np.random.default_rng(0), size=160, kind="two_part").astype(np.float32)
    px = o[..., :3][o[..., 3] == 255]
    spread = np.linalg.norm(px - px.mean(0), axis=1)
    assert np.percentile(spread, 95) > 25  # head and body differ, beyond texture


def test_backgrounds() -> None:
    b = background_rgb(np.random.default_rng(2), 60, 80)
    assert b.shape == (60, 80, 3) and b.dtype == np.uint8 and b.std() > 2
    assert not np.array_equal(b, background_rgb(np.random.default_rng(3), 60, 80))
