"""The morphology trimapper: band, guarantees, and the see-through option."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import Pipeline
from layerkit.errors import ConfigError
from layerkit.modules.trimapper.morphology import MorphologyTrimapper


def _disc(h: int = 120, w: int = 120, r: float = 40.0) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= r * r


def _crown(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A see-through 'crown': a lattice of dark twigs inside a disc, green background behind and
    around it. Returns (image, solid disc mask, twig mask)."""
    rng = np.random.default_rng(seed)
    disc = _disc()
    twigs = np.zeros_like(disc)
    twigs[::6, :] = True
    twigs[:, ::6] = True
    twigs &= disc
    green = np.array([0.2, 0.6, 0.25]) + rng.normal(0, 0.02, disc.shape + (3,))
    brown = np.array([0.35, 0.2, 0.1]) + rng.normal(0, 0.02, disc.shape + (3,))
    image = np.where(twigs[..., None], brown, green).clip(0, 1).astype(np.float32)
    return image, disc, twigs


def _look_alike() -> tuple[np.ndarray, np.ndarray]:
    """A solid disc: its right half grey like the background, its left half distinct. (image, disc)"""
    rng = np.random.default_rng(1)
    disc = _disc()
    image = np.empty(disc.shape + (3,), np.float32)
    image[:] = np.array([0.5, 0.5, 0.5]) + rng.normal(0, 0.02, disc.shape + (3,))
    half = disc.copy()
    half[:, 60:] = False
    image[half] = np.array([0.6, 0.3, 0.2]) + rng.normal(0, 0.02, (int(half.sum()), 3))  # left half distinct
    return image, disc


def test_band_scales_with_the_object_and_keeps_fg_and_bg():
    tm = MorphologyTrimapper(band_ratio=0.05)
    small, large = _disc(r=10), _disc(h=400, w=400, r=150)
    assert tm.band_for(large) > tm.band_for(small)
    tiny = np.zeros((50, 50), bool)
    tiny[25, 25] = True  # one pixel: erosion removes it, the trimap must still have FG and BG
    t = tm(tiny)
    assert (t == 1.0).any() and (t == 0.0).any()


def test_see_through_opens_the_holes_of_a_crown():
    image, disc, twigs = _crown()
    plain = MorphologyTrimapper()(disc, image)
    opened = MorphologyTrimapper(see_through=True)(disc, image)
    holes = disc & ~twigs
    inner = plain == 1.0
    assert (plain[holes & inner] == 1.0).all()  # without the option the interior is sure FG
    assert (opened[holes & inner] < 1.0).mean() > 0.9  # with it the holes are unknown or BG
    assert (opened[twigs & inner] == 1.0).mean() > 0.9  # the twigs stay sure FG
    assert (opened == 0.0).any() and (opened == 1.0).any()


def test_see_through_leaves_a_solid_look_alike_object_alone():
    """Background-coloured patches of a solid object are broad, not interleaved with object
    pixels: the trimap must not change."""
    image, disc = _look_alike()
    plain = MorphologyTrimapper()(disc, image)
    opened = MorphologyTrimapper(see_through=True)(disc, image)
    np.testing.assert_array_equal(plain, opened)


def test_see_through_without_an_image_is_the_plain_trimap():
    disc = _disc()
    np.testing.assert_array_equal(MorphologyTrimapper(see_through=True)(disc), MorphologyTrimapper()(disc))


def test_bad_see_through_quantile_names_the_key():
    with pytest.raises(ConfigError, match=r"trimapper\.see_through_quantile"):
        Pipeline.from_config("classical", ["trimapper.see_through_quantile=2"])


def test_see_through_ignores_a_few_background_coloured_spots():
    """Dark shadows in a person's hair share the colour of a dark collar in the ring; a few such
    spots (here 3 % of the interior) are not holes."""
    rng = np.random.default_rng(2)
    disc = _disc()
    image = np.empty(disc.shape + (3,), np.float32)
    image[:] = np.array([0.1, 0.1, 0.1]) + rng.normal(0, 0.01, disc.shape + (3,))  # dark surroundings
    image[disc] = np.array([0.8, 0.6, 0.4]) + rng.normal(0, 0.01, (int(disc.sum()), 3))
    spots = disc & (rng.random(disc.shape) < 0.03)
    image[spots] = image[0, 0]  # dark spots, interleaved with the object
    plain = MorphologyTrimapper()(disc, image)
    np.testing.assert_array_equal(MorphologyTrimapper(see_through=True)(disc, image), plain)
    # the same spots at 30 % of the interior are opened
    many = disc & (rng.random(disc.shape) < 0.3)
    image[many] = image[0, 0]
    assert (MorphologyTrimapper(see_through=True)(disc, image) != plain).any()


def _gappy_crown(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A shrub: brown foliage with many separate 10×10 gaps of the green background. The gaps are
    too wide for the 2-px interleaving test (their centres lie 5 px from any leaf)."""
    rng = np.random.default_rng(seed)
    disc = _disc()
    gaps = np.zeros_like(disc)
    for y in range(22, 100, 16):
        for x in range(22, 100, 16):
            gaps[y:y + 10, x:x + 10] = True
    gaps &= disc
    green = np.array([0.2, 0.6, 0.25]) + rng.normal(0, 0.02, disc.shape + (3,))
    brown = np.array([0.35, 0.2, 0.1]) + rng.normal(0, 0.02, disc.shape + (3,))
    image = np.where(disc[..., None] & ~gaps[..., None], brown, green).clip(0, 1).astype(np.float32)
    return image, disc, gaps


def test_see_through_fragments_opens_scattered_wide_gaps():
    image, disc, gaps = _gappy_crown()
    plain = MorphologyTrimapper()(disc, image)
    inner = plain == 1.0
    interleaved_only = MorphologyTrimapper(see_through=True)(disc, image)
    np.testing.assert_array_equal(interleaved_only, plain)  # the 2-px test alone leaves the gaps solid
    opened = MorphologyTrimapper(see_through=True, see_through_fragments=0.6)(disc, image)
    assert (opened[gaps & inner] < 1.0).mean() > 0.9
    assert (opened[~gaps & inner] == 1.0).mean() > 0.9  # the foliage stays sure FG


def test_see_through_fragments_leaves_one_broad_look_alike_patch_alone():
    """The solid look-alike object of the test above: its background-coloured half is one patch."""
    image, disc = _look_alike()
    plain = MorphologyTrimapper()(disc, image)
    opened = MorphologyTrimapper(see_through=True, see_through_fragments=0.6)(disc, image)
    np.testing.assert_array_equal(plain, opened)


def test_bad_see_through_fragments_names_the_key():
    with pytest.raises(ConfigError, match=r"trimapper\.see_through_fragments"):
        Pipeline.from_config("classical", ["trimapper.see_through_fragments=1.5"])
