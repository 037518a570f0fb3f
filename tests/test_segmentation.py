"""The weight-free GrabCut segmenter: initialisations, threads, fallback, bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import Pipeline, Prompt
from layerkit.errors import ConfigError
from layerkit.modules.segmentation.grabcut import INITS, GrabCutSegmenter, colour_separation


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
                                           ("segmenter.inits=[box,ring]", "segmenter.inits")])
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
    from layerkit.modules.segmentation.grabcut import background_separation

    img = composite["image"]
    obj = composite["alpha"] > 0.5
    bg = np.zeros_like(obj)
    bg[:, :10] = True  # a strip of pure background
    assert background_separation(img, obj, bg) > 0.9
    assert background_separation(img, bg, bg) == pytest.approx(0.0)
    assert background_separation(img, np.zeros_like(obj), bg) == -1.0
    assert background_separation(img, obj, np.zeros_like(obj)) == 0.0
