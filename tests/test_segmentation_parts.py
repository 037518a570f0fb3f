"""GrabCut hypotheses that lose parts: the frame-anchored ellipse and the restoration of dropped parts."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import Pipeline, Prompt
from layerkit.errors import ConfigError
from layerkit.modules.segmenter.grabcut import (
    GrabCutSegmenter,
    centred_ellipse,
    colour_separation,
    restore_dropped_parts,
    touches_frame,
)


def test_frame_anchored_ellipse_runs_to_the_side_the_box_shares_with_the_frame() -> None:
    box = np.array([40.0, 30.0, 120.0, 100.0])  # bottom side on the frame of a 100×160 image
    assert touches_frame(box, (100, 160)) and not touches_frame(np.array([40, 30, 120, 90.0]), (100, 160))
    assert not touches_frame(np.array([0, 0, 160, 100.0]), (100, 160))  # spans the picture: nothing is cut
    centred = centred_ellipse(box, (100, 160), 0.6)
    anchored = centred_ellipse(box, (100, 160), 0.6, anchor=True)
    assert not centred[99].any()  # the centred ellipse frees the cut-off bottom as "probably background"
    cols = np.flatnonzero(anchored[99])
    assert cols.min() < 60 and cols.max() > 100  # anchored: the bottom row is object over most of the box
    assert not anchored[:30].any()  # never above the box
    np.testing.assert_array_equal(centred_ellipse(box, (100, 160), 0.6, anchor=False), centred)
    inner = np.array([40.0, 30.0, 120.0, 90.0])
    np.testing.assert_array_equal(centred_ellipse(inner, (100, 160), 0.6, anchor=True), centred_ellipse(inner, (100, 160), 0.6))


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blue sky (known background), an orange head over a dark body, and a blue patch beside the body."""
    rng = np.random.default_rng(0)
    h, w = 80, 100
    img = np.zeros((h, w, 3), np.float32)
    img[:] = [0.3, 0.5, 0.9]
    body = np.zeros((h, w), bool)
    body[45:80, 30:70] = True
    head = np.zeros((h, w), bool)
    head[20:45, 38:62] = True
    img[body] = [0.2, 0.1, 0.05]
    img[head] = [0.9, 0.55, 0.2]
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)
    known_bg = np.ones((h, w), bool)
    known_bg[10:, 20:80] = False
    return img, body, head, known_bg


def test_a_dropped_part_foreign_to_the_background_is_restored() -> None:
    img, body, head, known_bg = _scene()
    out = restore_dropped_parts(img, body, [body | head], known_bg, threshold=0.8, min_part=0.05)
    np.testing.assert_array_equal(out, body | head)
    assert colour_separation(img, body | head) >= colour_separation(img, body) - 0.02


def test_background_small_detached_or_ring_breaking_parts_stay_out() -> None:
    img, body, head, known_bg = _scene()
    sky = np.zeros_like(body)
    sky[50:70, 70:90] = True  # touches the body, but has the known background's colours
    np.testing.assert_array_equal(restore_dropped_parts(img, body, [body | sky], known_bg), body)
    far = np.zeros_like(body)
    far[2:8, 2:30] = True  # foreign colour, but detached from the chosen mask
    img = img.copy()
    img[far] = [0.9, 0.55, 0.2]
    np.testing.assert_array_equal(restore_dropped_parts(img, body, [body | far], known_bg & ~far), body)
    np.testing.assert_array_equal(restore_dropped_parts(img, body, [body | head], known_bg, min_part=0.9), body)  # too small
    np.testing.assert_array_equal(restore_dropped_parts(img, body, [body | head], np.zeros_like(body)), body)  # no known bg
    # a part whose addition makes the cut run through its own colours (ring separation falls) stays out
    half_head = head.copy()
    half_head[:, 50:] = False  # only the left half: the ring then crosses the head's right half
    out = restore_dropped_parts(img, body, [body | half_head], known_bg, tolerance=0.0)
    assert colour_separation(img, body | half_head) < colour_separation(img, body)
    np.testing.assert_array_equal(out, body)


def test_segmenter_restores_through_its_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The initialisation that wins the ring-separation vote drops the head; another keeps it; the head comes back."""
    import layerkit.modules.segmenter.grabcut as gc

    img, body, head, _ = _scene()
    answers = iter([body | head, body])
    seg = GrabCutSegmenter(inits=("histogram", "center"), threads=1, fill_holes=1.0, restore_parts=0.8)
    monkeypatch.setattr(seg, "_grabcut", lambda img8, labels: next(answers))
    monkeypatch.setattr(gc, "colour_separation", lambda image, mask: 1.0 if mask.sum() == body.sum() else 0.99)
    mask = seg(img, Prompt(boxes=[[20, 10, 80, 80]]))
    np.testing.assert_array_equal(mask, body | head)
    answers = iter([body | head, body])
    seg.restore_parts = 1.0  # off: the vote's winner as it is
    np.testing.assert_array_equal(seg(img, Prompt(boxes=[[20, 10, 80, 80]])), body)


def test_frame_initialisation_runs_only_when_a_box_reaches_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    img, body, head, _ = _scene()
    seg = GrabCutSegmenter(inits=("center", "frame"), threads=1)
    runs: list[int] = []
    monkeypatch.setattr(seg, "_grabcut", lambda img8, labels: runs.append(1) or (body | head))
    seg(img, Prompt(boxes=[[20, 10, 80, 75]]))
    assert len(runs) == 1
    seg(img, Prompt(boxes=[[20, 10, 80, 80]]))  # bottom side on the frame
    assert len(runs) == 3


@pytest.mark.parametrize("override", ["segmenter.restore_parts=1.5", "segmenter.min_part=0"])
def test_bad_restore_settings_name_the_key(override: str) -> None:
    with pytest.raises(ConfigError, match="segmenter.restore_parts"):
        Pipeline.from_config("classical", [override])
