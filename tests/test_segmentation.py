"""The weight-free GrabCut segmenter: initialisations, threads, fallback, bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import Pipeline, Prompt
from layerkit.errors import ConfigError
from layerkit.modules.segmenter.grabcut import INITS, GrabCutSegmenter, colour_separation


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("init", INITS)
def test_each_initialisation_finds_the_object(composite, init):
    seg = GrabCutSegmenter(inits=(init,))
    mask = seg(composite["image"], Prompt(boxes=[composite["box"]]))
    assert mask.dtype == bool and mask.shape == composite["alpha"].shape
    assert _iou(mask, composite["alpha"] > 0.5) > 0.85


def test_threads_do_not_change_the_result(composite):
    prompt = Prompt(boxes=[composite["box"]])
    inits = ("histogram", "center", "core", "box")
    one = GrabCutSegmenter(inits=inits, threads=1)(composite["image"], prompt)
    two = GrabCutSegmenter(inits=inits, threads=2)(composite["image"], prompt)
    assert np.array_equal(one, two)


def test_the_best_separated_initialisation_wins(composite, monkeypatch):
    """Of two candidate masks the one whose colours differ most from its ring is kept."""
    seg = GrabCutSegmenter(inits=("center", "core"), threads=1)
    good = composite["alpha"] > 0.5
    half = good.copy()
    half[:, : half.shape[1] // 2] = False  # cuts through the object: its ring shares its colours
    assert colour_separation(composite["image"], good) > colour_separation(composite["image"], half)
    answers = iter([half, good])
    monkeypatch.setattr(seg, "_grabcut", lambda img8, labels: next(answers))
    mask = seg(composite["image"], Prompt(boxes=[composite["box"]]))
    assert np.array_equal(mask, good)


@pytest.mark.parametrize("min_cover, wins", [(0.02, "object"), (0.0, "speck")])
def test_a_speck_does_not_win_over_the_object(composite, monkeypatch, min_cover, wins):
    """A few pixels can score best (the shipped photo's white shuttle was lost that way: a
    136-pixel mask won); below ``min_cover`` of the box an initialisation has lost the object."""
    import layerkit.modules.segmenter.grabcut as gc

    obj = composite["alpha"] > 0.5
    speck = np.zeros_like(obj)
    speck[48, 64] = True
    monkeypatch.setattr(gc, "colour_separation", lambda image, mask: 1.0 / mask.sum())  # smaller scores better
    monkeypatch.setattr(gc, "background_separation", lambda image, mask, bg: 0.0)
    seg = GrabCutSegmenter(inits=("center", "core"), threads=1, min_cover=min_cover, fill_holes=1.0)
    answers = iter([obj, speck])
    monkeypatch.setattr(seg, "_grabcut", lambda img8, labels: next(answers))
    mask = seg(composite["image"], Prompt(boxes=[composite["box"]]))
    assert np.array_equal(mask, obj if wins == "object" else speck)


@pytest.mark.parametrize("weight, wins", [(0.0, "ring"), (1.0, "known")])
def test_background_weight_adds_the_known_background_term(composite, monkeypatch, weight, wins):
    """The ring separation alone picks the mask it likes; with ``background_weight`` the
    separation from the known background (outside the box) is added to the score."""
    import layerkit.modules.segmenter.grabcut as gc

    obj = composite["alpha"] > 0.5
    ring_pick = obj.copy()
    ring_pick[:, : int(composite["box"][0]) + 10] = False  # a partial mask
    monkeypatch.setattr(gc, "colour_separation", lambda image, mask: 0.6 if mask is ring_pick else 0.5)
    monkeypatch.setattr(gc, "background_separation", lambda image, mask, bg: 0.0 if mask is ring_pick else 0.3)
    seg = GrabCutSegmenter(inits=("center", "core"), threads=1, fill_holes=1.0, background_weight=weight)
    answers = iter([obj, ring_pick])
    monkeypatch.setattr(seg, "_grabcut", lambda img8, labels: next(answers))
    mask = seg(composite["image"], Prompt(boxes=[composite["box"]]))
    assert np.array_equal(mask, ring_pick if wins == "ring" else obj)


def test_collapsed_grabcut_falls_back_on_the_box(composite, monkeypatch):
    """GrabCut losing the object must not turn a valid prompt into 'no object found'."""
    seg = GrabCutSegmenter(box_margin=0)
    calls = []

    def empty(img8, labels):
        calls.append(1)
        return np.zeros(labels.shape, bool)

    monkeypatch.setattr(seg, "_grabcut", empty)
    x0, y0, x1, y1 = composite["box"].astype(int)
    mask = seg(composite["image"], Prompt(boxes=[composite["box"]]))
    assert len(calls) == len(seg.inits) + 1  # every initialisation, then plain box GrabCut
    expected = np.zeros_like(mask)
    expected[y0:y1, x0:x1] = True
    assert np.array_equal(mask, expected)


@pytest.mark.parametrize("override, key", [("segmenter.threads=0", "segmenter.threads"),
                                           ("segmenter.inits=[box,ring]", "segmenter.inits"),
                                           ("segmenter.fill_holes=2", "segmenter.fill_holes"),
                                           ("segmenter.min_cover=1", "segmenter.min_cover"),
                                           ("segmenter.background_weight=-1", "segmenter.background_weight")])
def test_bad_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Pipeline.from_config("classical", [override])


def test_a_point_added_to_a_box_does_not_shrink_the_object(composite):
    """A positive point beside the main mask (a part GrabCut left out) adds to the box's object;
    it must not reduce the mask to the point's own little component."""
    box = composite["box"]
    seg = GrabCutSegmenter(inits=("histogram",))
    alone = seg(composite["image"], Prompt(boxes=[box]))
    x, y = int(box[0]) + 1, int(box[1]) + 1  # a background corner of the box, away from the disc
    assert not alone[y, x]
    both = seg(composite["image"], Prompt(boxes=[box], points=[[x, y]], labels=[1]))
    assert both[y, x]
    assert (both & alone).sum() >= 0.95 * alone.sum()


def test_background_separation(composite):
    from layerkit.modules.segmenter.grabcut import background_separation

    img = composite["image"]
    obj = composite["alpha"] > 0.5
    bg = np.zeros_like(obj)
    bg[:, :10] = True  # a strip of pure background
    assert background_separation(img, obj, bg) > 0.9
    assert background_separation(img, bg, bg) == pytest.approx(0.0)
    assert background_separation(img, np.zeros_like(obj), bg) == -1.0
    assert background_separation(img, obj, np.zeros_like(obj)) == 0.0


def _holed(hole_colour: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A red disc with a round hole of ``hole_colour`` on a green-blue background."""
    h, w = 80, 100
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w, 3), np.float32)
    img[...] = (0.1, 0.6, 0.5)
    img[..., 1] += 0.1 * np.sin(xx / 4.0)
    disc = np.hypot(yy - 40, xx - 50) < 28
    hole = np.hypot(yy - 40, xx - 50) < 6
    img[disc] = (0.85, 0.15, 0.1)
    img[hole] = hole_colour
    known = np.ones((h, w), bool)
    known[8:72, 18:82] = False
    return img, disc & ~hole, known


def test_holes_foreign_to_the_background_are_filled():
    from layerkit.modules.segmenter.grabcut import fill_foreign_holes

    img, mask, known = _holed((0.02, 0.02, 0.02))  # a black eye: no such colour outside
    filled = fill_foreign_holes(img, mask, known)
    assert filled.sum() > mask.sum() + 80 and not (filled & ~(mask | (np.hypot(*np.mgrid[-40:40, -50:50]) < 6))).any()
    img, mask, known = _holed((0.1, 0.6, 0.5))  # the background seen through the object
    assert np.array_equal(fill_foreign_holes(img, mask, known), mask)
    img, mask, known = _holed((0.02, 0.02, 0.02))
    assert np.array_equal(fill_foreign_holes(img, mask, known, max_hole=0.01), mask)  # too large a hole
    assert np.array_equal(fill_foreign_holes(img, mask, np.zeros_like(known)), mask)  # no known background


def test_segmenter_fills_an_emoji_eye_only_when_enabled(monkeypatch):
    """GrabCut gave the eye to the background (as on the dev set's dog emoji); the segmenter fills it."""
    img, mask, _ = _holed((0.02, 0.02, 0.02))
    monkeypatch.setattr(GrabCutSegmenter, "_grabcut", lambda self, img8, labels: mask.copy())
    prompt = Prompt(boxes=[[20, 10, 80, 70]])
    on = GrabCutSegmenter(threads=1)(img, prompt)
    off = GrabCutSegmenter(threads=1, fill_holes=1.0)(img, prompt)
    assert on[40, 50] and not off[40, 50] and np.array_equal(off, mask)
    with pytest.raises(ValueError, match="fill_holes"):
        GrabCutSegmenter(fill_holes=1.5)
