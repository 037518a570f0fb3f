"""A click's extent: the largest click mask the box path gives back (``segmenter.point_select``)."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.app.noc import mask_iou
from layerkit.modules.segmenter.click_select import locate_click, padded_mask_box, resegment_box, select_click_mask
from layerkit.modules.segmenter.grabcut import GrabCutSegmenter
from layerkit.types import Prompt

H, W = 100, 140


def _rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


PART = _rect(30, 50, 40, 60)        # the part under the click
OBJECT = _rect(20, 80, 30, 90)      # the whole object
LEAK = _rect(5, 95, 10, 130)        # the object and the background it leaked into
CLICK = Prompt(points=[[50, 40]])


def _box_path(prompt: Prompt) -> np.ndarray:
    """A box path that finds the object inside any box holding it, else what the box holds of the part."""
    x0, y0, x1, y1 = (int(round(v)) for v in prompt.boxes[0])
    inside = _rect(y0, y1, x0, x1)
    return OBJECT.copy() if (OBJECT & ~inside).sum() == 0 else PART & inside


def test_the_largest_stable_mask_wins_and_a_leak_is_not_stable() -> None:
    by_side = {370: PART, 512: OBJECT, 640: LEAK}
    mask, box, trials = select_click_mask(lambda p, side: by_side[side], _box_path, CLICK, [370, 512, 640])
    np.testing.assert_array_equal(mask, OBJECT)
    # the part and the object are given back (IoU 1); the leak's box path returns the object (IoU 0.33)
    assert [t["side"] for t in trials] == [370, 512, 640]
    assert [round(t["iou"], 2) for t in trials] == [1.0, 1.0, round(OBJECT.sum() / LEAK.sum(), 2)]
    assert [t["chosen"] for t in trials] == [False, True, False]
    np.testing.assert_allclose(box, padded_mask_box(OBJECT, 0.04, (H, W)))
    # without the object's size the part is the largest stable mask: it is taken, not the leak
    mask, _, trials = select_click_mask(lambda p, side: {370: PART, 640: LEAK}[side], _box_path, CLICK, [370, 640])
    np.testing.assert_array_equal(mask, PART)
    assert [t["chosen"] for t in trials] == [True, False]


def test_no_stable_mask_returns_the_first_sizes_click_mask_and_no_box() -> None:
    empty = np.zeros((H, W), bool)
    mask, box, trials = select_click_mask(lambda p, side: {370: LEAK, 640: empty}[side], _box_path, CLICK, [370, 640])
    assert box is None and mask is not None
    np.testing.assert_array_equal(mask, LEAK)
    assert trials[1]["iou"] is None and trials[1]["area"] == 0 and not any(t["chosen"] for t in trials)
    with pytest.raises(ValueError, match="at least one"):
        select_click_mask(lambda p, side: PART, _box_path, CLICK, [])


def test_the_candidate_box_holds_every_positive_click() -> None:
    seen: list[list[float]] = []

    def box_path(prompt: Prompt) -> np.ndarray:
        seen.append(list(prompt.boxes[0]))
        np.testing.assert_array_equal(prompt.points, [[50, 40], [120, 90]])  # the clicks travel as corrections
        return PART

    select_click_mask(lambda p, side: PART, box_path, Prompt(points=[[50, 40], [120, 90]], labels=[1, 1]), [370])
    x0, y0, x1, y1 = seen[0]
    assert x0 <= 40 and y0 <= 30 and x1 >= 121 and y1 >= 91


def test_locate_click_segments_the_region_around_the_mask_and_pastes_it_back() -> None:
    image = np.zeros((H, W, 3), np.float32)
    shapes: list[tuple[int, int]] = []

    def segment(sub: np.ndarray, prompt: Prompt) -> np.ndarray:
        shapes.append(sub.shape[:2])
        out = np.zeros(sub.shape[:2], bool)
        x, y = (int(v) for v in prompt.points[0])
        out[y - 2:y + 3, x - 2:x + 3] = True  # the click, in the region's pixels
        return out

    got = locate_click(segment, image, PART, CLICK, margin=0.25, min_margin=4)
    # PART's box 40..60 x 30..50 (and the click), grown by 0.25 × 20 = 5 px
    assert shapes == [(30, 30)]
    assert got[38:43, 48:53].all() and got.sum() == 25
    assert locate_click(segment, image, np.zeros((H, W), bool), CLICK) is not None and len(shapes) == 1


def test_resegment_box_keeps_the_better_separated_of_the_two_masks() -> None:
    yy, xx = np.mgrid[:H, :W]
    image = np.full((H, W, 3), 0.5, np.float32)
    disc = (xx - 70) ** 2 + (yy - 50) ** 2 < 20 ** 2
    image[disc] = [0.9, 0.1, 0.1]
    coarse = (xx - 70) ** 2 + (yy - 50) ** 2 < 26 ** 2  # spills into the grey ring: worse separated
    regions: list[tuple[int, int]] = []

    def exact(sub: np.ndarray, prompt: Prompt) -> np.ndarray:
        regions.append(sub.shape[:2])
        return (sub[..., 1] < 0.3)

    box = np.array([44.0, 24.0, 96.0, 76.0])
    got = resegment_box(exact, image, coarse, box, CLICK)
    np.testing.assert_array_equal(got, disc)
    assert regions == [(H, 100)]  # the box grown by 24 px (min_margin > 0.25 × 52), clipped to the image
    spill = lambda sub, prompt: np.ones(sub.shape[:2], bool)  # noqa: E731  (the whole region: worse)
    assert resegment_box(spill, image, disc, box, CLICK) is disc


def _two_tone_scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :160]
    img = np.empty((120, 160, 3), np.float32)
    img[:] = [0.55, 0.55, 0.5]
    obj = ((xx - 80) / 40.0) ** 2 + ((yy - 60) / 35.0) ** 2 < 1
    img[obj] = [0.8, 0.25, 0.15]
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0, 1), obj


def test_grabcut_with_point_select_finds_the_clicked_object() -> None:
    img, obj = _two_tone_scene()
    seg = GrabCutSegmenter(max_side=370, point_select=(64, 160))
    mask = seg(img, Prompt(points=[[80, 60]]))
    assert mask.shape == obj.shape and mask_iou(mask, obj) > 0.9
    off = GrabCutSegmenter(max_side=370)(img, Prompt(points=[[80, 60]]))
    assert mask_iou(off, obj) > 0.9  # the plain click finds it too: point_select changes the extent, not the object
    box = seg(img, Prompt(boxes=[[30, 15, 130, 105]]))  # boxes do not go through the selection
    np.testing.assert_array_equal(box, GrabCutSegmenter(max_side=370)(img, Prompt(boxes=[[30, 15, 130, 105]])))


@pytest.mark.parametrize("kw", [{"point_select": (8,)}, {"point_select_iou": 0.0}, {"point_select_iou": 1.5}])
def test_bad_point_select_settings_are_refused(kw: dict) -> None:
    with pytest.raises(ValueError, match="point_select"):
        GrabCutSegmenter(**kw)
