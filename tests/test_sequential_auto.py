"""Occlusion ordering, duplicate tests, automatic mode (weight-free, grounded, any proposer stage) and the backend path."""

from __future__ import annotations

import numpy as np
import pytest
from test_sequential import OraclePipe, make_scene

from layerkit.errors import PromptError
from layerkit.evaluation.metrics import soft_iou
from layerkit.modules.base import Candidate, Detections, MultiLayer, Proposer
from layerkit.modules.orderer import evidence as O
from layerkit.modules.proposer.grounded import GroundedProposer, grounded_prompts
from layerkit.modules.proposer.saliency import find_candidates
from layerkit.ops import boxes as B
from layerkit.ops.masks import same_object
from layerkit.ops.prompts import prompts_equal
from layerkit.pipelines.sequential import auto_layers, peel_layers
from layerkit.types import Layer, LayerStack, Prompt


def test_box_helpers():
    assert B.box_intersection((0, 0, 10, 10), (5, 5, 20, 20)) == (5, 5, 10, 10)
    assert B.box_intersection((0, 0, 10, 10), (10, 0, 20, 10)) is None
    assert B.box_union((0, 0, 10, 10), None) == (0, 0, 10, 10)
    assert B.box_iou((0, 0, 10, 10), (0, 0, 10, 20)) == pytest.approx(0.5)


def test_prompts_equal():
    a = Prompt(boxes=[[10, 10, 50, 50]])
    assert prompts_equal(a, Prompt(boxes=[[10, 10, 50, 50.5]]))
    assert not prompts_equal(a, Prompt(boxes=[[10, 10, 30, 50]]))
    assert not prompts_equal(a, Prompt(boxes=[[10, 10, 50, 50]], points=[[20, 20]]))
    assert prompts_equal(Prompt(points=[[3, 4]], text="Lamp"), Prompt(points=[[3.5, 4]], text="lamp"))
    assert not prompts_equal(Prompt(points=[[3, 4]], labels=[1]), Prompt(points=[[3, 4]], labels=[0]))


def _visible(gt: LayerStack, k: int) -> np.ndarray:
    a = gt[k].alpha.copy()
    for m in range(k + 1, len(gt)):
        a *= 1 - gt[m].alpha
    return a


def test_cover_cue_puts_the_whole_object_in_front():
    s = make_scene()
    bar, disc = _visible(s["gt"], 1), _visible(s["gt"], 2)
    score = O.occlusion_score(disc, bar, s["boxes"][1], s["boxes"][0])
    assert score > O.TIE
    assert O.occlusion_score(bar, disc, s["boxes"][0], s["boxes"][1]) == pytest.approx(-score)
    assert O.occlusion_score(bar, disc, (0, 0, 5, 5), (10, 10, 20, 20)) == 0.0


def test_contested_pixels_go_to_the_front_object_by_colour():
    h, w = 40, 60
    img = np.zeros((h, w, 3), np.float32)
    img[:, :] = (0.2, 0.6, 0.2)                        # the object behind: green, the whole left part
    img[10:30, 20:40] = (0.9, 0.1, 0.1)                # the occluder: red, inside the green one's box
    back = np.zeros((h, w), np.float32)
    back[5:35, 5:45] = 1.0                             # its box segmenter swallowed the red square
    front = np.zeros((h, w), np.float32)
    front[10:30, 20:40] = 1.0
    owner, n = O.contested_owner(img, front, back)
    assert n == 400 and owner == 1.0  # wholly inside the other's alpha: swallowed, so in front
    front[10:30, 40:44] = 1.0  # with some pixels of its own, the colours decide
    back[10:30, 40:44] = 0.0
    img[10:30, 40:44] = (0.9, 0.1, 0.1)
    owner, n = O.contested_owner(img, front, back)
    assert n == 400 and owner == pytest.approx(1.0)
    assert O.occlusion_score(front, back, (20, 10, 40, 30), (5, 5, 45, 35), img) > 0.9
    assert O.occlusion_order([back, front], [(5, 5, 45, 35), (20, 10, 40, 30)], img) == [1, 0]


def test_order_without_evidence_keeps_the_given_order():
    a = np.zeros((10, 10), np.float32)
    assert O.occlusion_order([a, a, a], [(0, 0, 2, 2), (4, 4, 6, 6), None]) == [0, 1, 2]
    with pytest.raises(ValueError, match="boxes"):
        O.occlusion_order([a], [])


def test_same_object():
    a = np.zeros((10, 10), np.float32)
    a[2:8, 2:8] = 1
    b = a.copy()
    b[2, 2] = 0
    assert same_object(a, b) > 0.95
    assert same_object(a, np.roll(a, 4, axis=1)) is None


def test_find_candidates_finds_separate_salient_objects_and_stops_on_flat_images():
    h, w = 90, 120
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    img = np.stack([0.4 + 0.1 * xx / w, 0.5 + 0.05 * yy / h, 0.45 + 0 * xx], axis=2).astype(np.float32)
    assert find_candidates(img) == []
    img[15:45, 15:45] = (0.9, 0.1, 0.1)
    img[50:80, 70:105] = (0.1, 0.1, 0.9)
    cands = find_candidates(img)
    assert len(cands) == 2
    boxes = sorted(c.box for c in cands)
    assert B.box_iou(boxes[0], (15, 15, 45, 45)) > 0.7 and B.box_iou(boxes[1], (70, 50, 105, 80)) > 0.7
    p = cands[0].prompt()
    x, y = p.points[0].astype(int)
    assert p.mask[y, x] and p.labels.tolist() == [1]


def test_auto_mode_peels_every_object_and_recomposes():
    s = make_scene()
    res = peel_layers(OraclePipe(s["gt"]), s["image"], None)
    assert res.mode == "auto" and len(res.stack) == 4 and res.psnr >= 40.0
    for k in range(1, 4):  # every object is found (peeled in saliency order, so a visible part may be all there is)
        assert max(soft_iou(layer.alpha, s["gt"][k].alpha) for layer in res.stack.layers[1:]) > 0.8
    capped = peel_layers(OraclePipe(s["gt"]), s["image"], [], max_layers=2)
    assert len(capped.stack) == 2 and capped.psnr >= 40.0


class _Grounder:
    def __call__(self, image: np.ndarray, text: str) -> Detections:
        boxes = np.array([[55, 23, 90, 58], [56, 24, 90, 58], [10, 20, 70, 44], [0, 0, 5, 5]], np.float32)
        return Detections(boxes=boxes, scores=np.array([0.9, 0.8, 0.7, 0.1], np.float32), labels=["object"] * 4)


def test_grounded_prompts_suppress_repeats_and_low_scores():
    prompts = grounded_prompts(_Grounder(), np.zeros((80, 120, 3), np.float32))
    assert [p.boxes[0].tolist() for p in prompts] == [[55, 23, 90, 58], [10, 20, 70, 44]]


def test_auto_mode_uses_the_configured_proposer():
    s = make_scene()
    pipe = OraclePipe(s["gt"])
    pipe.grounder = _Grounder()
    pipe.proposer = GroundedProposer()
    res = auto_layers(pipe, s["image"])
    assert res.mode == "auto-grounded" and res.stack.names[1:] == ["object_2", "object_1"]
    assert pipe.checked == ["grounder"]  # a grounded proposer gets the grounder's weights checked first

    class _Masks(Proposer):  # any proposer stage, e.g. SAM's automatic masks
        def __call__(self, image: np.ndarray, grounder: object = None) -> list[Candidate]:
            thin = np.zeros(image.shape[:2], bool) | (np.arange(120) < 2)[None, :]
            return [Candidate(s["gt"][3].alpha > 0.5, (0, 0, 1, 1), 1.0), Candidate(thin, (0, 0, 2, 90), 0.5)]

    pipe = OraclePipe(s["gt"])
    pipe.proposer = _Masks()
    pipe._which = lambda prompt: 3 if prompt.mask[50, 85] else None
    res = auto_layers(pipe, s["image"])
    assert res.mode.startswith("auto-") and len(res.stack) == 2
    assert [o.status for o in res.objects] == ["layer", "empty"]
    pipe.proposer = None
    with pytest.raises(PromptError, match="proposer.backend=saliency"):
        auto_layers(pipe, s["image"])


def test_a_multilayer_backend_replaces_peeling():
    s = make_scene()

    class _Backend(MultiLayer):
        def __call__(self, image: np.ndarray, max_layers: int | None = None) -> LayerStack:
            return LayerStack(list(s["gt"].layers[:max_layers]))

    res = peel_layers(None, s["image"], None, backend=_Backend(), max_layers=3)
    assert res.mode == "_Backend" and res.stack.names == ["background", "bar", "disc"]
    assert [o.layer for o in res.objects] == [1, 2]
    empty = Layer(np.zeros((80, 120, 4), np.float32))
    assert empty.bbox is None
