"""The classical pipeline end to end on a synthetic composite with exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit import Pipeline, Prompt
from layerkit.errors import PromptError
from layerkit.ops.compositing import psnr


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.from_config("classical")


def _check_result(res, comp):
    h, w = comp["image"].shape[:2]
    assert res.foreground.shape == (h, w, 4) and res.foreground.dtype == np.float32
    assert res.background.shape == (h, w, 3) and res.alpha.shape == (h, w)
    assert 0 <= res.alpha.min() and res.alpha.max() <= 1
    soft_iou = np.minimum(res.alpha, comp["alpha"]).sum() / np.maximum(res.alpha, comp["alpha"]).sum()
    assert soft_iou > 0.9
    assert psnr(res.layers.composite(), comp["image"]) > 40
    hidden = comp["alpha"] > 0.99
    assert np.abs(res.background[hidden] - comp["bg"][hidden]).mean() < 0.15
    assert res.layers.names[0] == "background" and len(res.layers) == 2


def test_box_prompt(pipe, composite):
    res = pipe(composite["image"], Prompt(boxes=[composite["box"]]))
    _check_result(res, composite)
    assert set(res.timings) >= {"segment", "trimap", "matte", "decompose", "refine"}


def test_point_prompt(pipe, composite):
    h, w = composite["image"].shape[:2]
    res = pipe(composite["image"], Prompt(points=[[w // 2, h // 2]]))
    _check_result(res, composite)


def test_mask_prompt_and_name(pipe, composite, image_file):
    res = pipe(image_file, Prompt(mask=composite["alpha"] > 0.5), name="disc")
    _check_result(res, composite)
    assert res.layers.names == ["background", "disc"]


def test_roi_limits_work_to_the_object(pipe):
    from conftest import make_composite

    big = make_composite(300, 400, seed=3)["image"].copy()
    small = make_composite(96, 128)
    big[100:196, 150:278] = small["image"]  # the object sits in a small part of a larger photo
    box = small["box"] + [150, 100, 150, 100]
    res = pipe(big, Prompt(boxes=[box]))
    x0, y0, x1, y1 = res.roi
    assert (x1 - x0) * (y1 - y0) < 0.5 * 300 * 400
    outside = np.ones_like(res.alpha, bool)
    outside[y0:y1, x0:x1] = False
    assert res.alpha[outside].max() == 0 and np.array_equal(res.background[outside], big[outside])
    got = res.alpha[100:196, 150:278]
    assert np.minimum(got, small["alpha"]).sum() / np.maximum(got, small["alpha"]).sum() > 0.9


def test_text_without_grounder_says_which_config(pipe, composite):
    with pytest.raises(PromptError, match="needs a grounding stage.*--config layeringdiff"):
        pipe(composite["image"], Prompt(text="the red disc"))


def test_no_prompt(pipe, composite):
    with pytest.raises(PromptError, match="no prompt"):
        pipe(composite["image"])


def test_progress_callback(pipe, composite):
    events = []
    pipe.progress = lambda stage, event, sec: events.append((stage, event))
    try:
        pipe(composite["image"], Prompt(boxes=[composite["box"]]))
    finally:
        pipe.progress = None
    assert ("segment", "start") in events and ("matte", "end") in events


def test_swapped_stage_is_used(composite):
    pipe = Pipeline.from_config("classical")

    class HalfMatter:
        def __call__(self, image, trimap):
            return np.where(trimap > 0.99, 1.0, np.where(trimap < 0.01, 0.0, 0.5)).astype(np.float32)

    pipe.matter = HalfMatter()
    res = pipe(composite["image"], Prompt(boxes=[composite["box"]]))
    assert set(np.unique(res.alpha)) <= {0.0, 0.5, 1.0}
    assert pipe.config()["matter"]["backend"].endswith("HalfMatter")


def test_point_whole_segments_a_click_once_on_the_whole_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """classical: one segmenter call on the whole image for a click (no coarse pass, no crop pass: the
    segmenter's point_select picks the extent); boxes keep the region pass. With point_whole off a
    click is segmented twice (coarse, then region)."""
    from conftest import make_composite

    s = make_composite(96, 160)
    click = Prompt(points=[[80, 48]])
    pipe = Pipeline.from_config("classical")
    assert pipe.settings.point_whole and pipe.segmenter.point_select == (370, 640)
    seg_type = type(pipe.segmenter)
    calls: list[tuple[int, ...]] = []
    original = seg_type.__call__

    def spy(self, image, prompt):  # type: ignore[no-untyped-def]
        calls.append(image.shape[:2])
        return original(self, image, prompt)

    monkeypatch.setattr(seg_type, "__call__", spy)
    res = pipe(s["image"], click)
    assert calls == [(96, 160)]
    assert float(np.minimum(res.alpha, s["alpha"]).sum() / np.maximum(res.alpha, s["alpha"]).sum()) > 0.8
    calls.clear()
    pipe(s["image"], Prompt(boxes=[s["box"]]))
    assert len(calls) == 1 and calls[0] != (96, 160)          # a box: its region only, as before
    calls.clear()
    Pipeline.from_config("classical", ["pipeline.point_whole=false"])(s["image"], click)
    assert len(calls) == 2                                     # coarse pass, then the region
