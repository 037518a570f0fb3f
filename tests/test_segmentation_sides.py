"""Background that crosses a box side (``continued_background``) and boxes a small margin from the frame."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import Pipeline
from layerkit.errors import ConfigError
from layerkit.modules.segmenter.grabcut import GrabCutSegmenter
from layerkit.modules.segmenter.grabcut_parts import continued_background
from layerkit.types import Prompt


def _tree_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey wall, a red disc (the object) and a green tree entering the user's padded box from the right.

    Most of the tree lies inside the box, so the ``histogram`` initialisation (colours more frequent
    inside the box than outside start as object) learns it as object.
    """
    rng = np.random.default_rng(0)
    h, w = 120, 160
    img = np.zeros((h, w, 3), np.float32)
    img[:] = [0.55, 0.55, 0.55]
    yy, xx = np.mgrid[:h, :w]
    disc = (xx - 60) ** 2 + (yy - 60) ** 2 < 30 ** 2
    tree = (xx >= 95) & (xx < 128) & (yy >= 25) & (yy < 95)
    img[tree] = [0.15, 0.45, 0.15]
    img[disc] = [0.85, 0.2, 0.15]
    img = np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1).astype(np.float32)
    box = np.array([22.0, 22.0, 120.0, 98.0])  # padded around the disc on the left, top, bottom; the tree crosses the right side
    return img, disc, box


def test_continued_background_marks_runs_across_the_sides_and_stops_at_the_object() -> None:
    img, disc, box = _tree_scene()
    run = continued_background(img, box, depth=0.1, tol=0.08)
    assert not (run & disc).any()  # the object is never marked
    assert run[50, 117] and run[30, 112]  # the tree, entered from the right side, is
    assert run[23, 60] and run[96, 60] and run[60, 23]  # the wall's slack inside the top, bottom and left sides
    assert not run[:, :22].any() and not run[:, 120:].any() and not run[:22].any()  # inside the box only
    assert not run[60, 40:100].any()  # not deeper than depth × the box's size (10 px here)
    tight = np.array([30.0, 30.0, 91.0, 91.0])  # a box touching the disc: the disc breaks the runs at its contact points
    assert not (continued_background(img, tight, depth=0.2, tol=0.08) & disc).any()


def test_continued_background_skips_sides_on_the_frame() -> None:
    img, _, _ = _tree_scene()
    whole = np.array([0.0, 0.0, 160.0, 120.0])
    assert not continued_background(img, whole).any()


def test_side_band_starts_the_histogram_run_with_the_crossing_tree_as_background(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    img, disc, box = _tree_scene()
    seen: dict[int, np.ndarray] = {}
    original = GrabCutSegmenter._grabcut

    def spy(self: GrabCutSegmenter, img8: np.ndarray, labels: np.ndarray) -> np.ndarray:
        seen[len(seen)] = labels.copy()
        return original(self, img8, labels)

    monkeypatch.setattr(GrabCutSegmenter, "_grabcut", spy)
    kw = dict(inits=("histogram", "center"), max_side=200, threads=1, restore_parts=1.0)
    mask = GrabCutSegmenter(**kw, side_band=0.1, side_tol=0.08)(img, Prompt(boxes=[box.tolist()]))
    histogram, center = seen[0], seen[1]
    assert (histogram[40:80, 112:120] == cv2.GC_BGD).all()  # the tree's run across the right side: sure background
    assert not (histogram[disc] == cv2.GC_BGD).any()
    assert not (center[22:98, 22:120] == cv2.GC_BGD).any()  # the ellipse runs start from the plain box
    assert (mask & disc).sum() > 0.95 * disc.sum() and not mask[40:80, 100:120].any()
    seen.clear()
    GrabCutSegmenter(**kw, side_band=0.0)(img, Prompt(boxes=[box.tolist()]))
    assert not (seen[0][22:98, 22:120] == cv2.GC_BGD).any()  # off: the box is all "probably foreground"


def test_side_band_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="side_band"):
        GrabCutSegmenter(side_band=0.7)
    with pytest.raises(ValueError, match="side_tol"):
        GrabCutSegmenter(side_tol=-1.0)


def test_the_default_config_ships_the_side_band() -> None:
    seg = Pipeline.from_config("classical").segmenter
    assert (seg.side_band, seg.side_tol) == (0.1, 0.08)


@pytest.mark.parametrize("override", ["segmenter.side_band=0.9", "segmenter.side_tol=-0.1",
                                      "segmenter.point_select=[8]", "segmenter.point_select_iou=0"])
def test_bad_side_or_click_settings_name_the_key(override: str) -> None:
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        Pipeline.from_config("classical", [override])


def _sky_scene() -> tuple[np.ndarray, np.ndarray, list[float]]:
    """A pink disc under a pale sky patch in the top-left, dark blue elsewhere; the user's box runs to
    the left and bottom frame and stops 2 px below the top edge, so the sky's only known sample is
    that strip (a doll's hair 2 px from the top of a photo)."""
    rng = np.random.default_rng(0)
    h, w = 120, 160
    img = np.zeros((h, w, 3), np.float32)
    img[:] = [0.15, 0.25, 0.45]
    yy, xx = np.mgrid[:h, :w]
    img[(yy < 30) & (xx < 100)] = [0.55, 0.7, 0.9]
    disc = (xx - 60) ** 2 + (yy - 75) ** 2 < 35 ** 2
    img[disc] = [0.85, 0.3, 0.4]
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)
    return img, disc, [0.0, 2.0, 130.0, 120.0]


def test_frame_gap_keeps_the_strip_between_a_box_side_and_the_frame() -> None:
    import cv2

    img, _, box = _sky_scene()
    prompt = Prompt(boxes=[box])
    on = GrabCutSegmenter(frame_gap=True).initial_labels(prompt, img.shape[:2], 1.0)
    off = GrabCutSegmenter(frame_gap=False).initial_labels(prompt, img.shape[:2], 1.0)
    assert (on[0] == cv2.GC_BGD).all() and (on[1, :130 + 2] == cv2.GC_PR_FGD).all()  # one row kept, the margin elsewhere
    assert (off[0, :132] == cv2.GC_PR_FGD).all()  # the 2 px margin swallows the user's strip
    assert (on[1:, 130:132] == cv2.GC_PR_FGD).all() and (on[:, 132:] == cv2.GC_BGD).all()  # a side far from the frame: the margin
    flush = Prompt(boxes=[[0.0, 0.0, 130.0, 120.0]])  # a box on the frame: nothing to keep
    assert np.array_equal(GrabCutSegmenter(frame_gap=True).initial_labels(flush, img.shape[:2], 1.0),
                          GrabCutSegmenter(frame_gap=False).initial_labels(flush, img.shape[:2], 1.0))


def test_frame_gap_lets_the_vote_see_the_sky_the_box_left_out() -> None:
    img, disc, box = _sky_scene()
    kw = dict(max_side=200, threads=1, frame_anchor=True, restore_parts=0.8, side_band=0.1, side_tol=0.08)
    iou = {}
    for gap in (False, True):
        mask = GrabCutSegmenter(**kw, frame_gap=gap)(img, Prompt(boxes=[box]))
        iou[gap] = (mask & disc).sum() / (mask | disc).sum()
    assert iou[True] > 0.95 and iou[False] < 0.7  # without the strip the sky patch is kept with the disc


def test_the_default_config_ships_the_frame_gap() -> None:
    assert Pipeline.from_config("classical").segmenter.frame_gap is True
    assert GrabCutSegmenter().frame_gap is False
