"""Sequential peeling: order, recomposition, bad input; with an exact oracle pipeline and the real one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import make_composite

from layerkit.config import PipelineSettings
from layerkit.errors import PromptError
from layerkit.modules.orderer.evidence import OcclusionOrderer
from layerkit.modules.proposer.saliency import SaliencyProposer
from layerkit.ops.compositing import psnr
from layerkit.pipelines.sequential import MAX_LAYERS, decompose_layers, peel_layers
from layerkit.types import DecompositionResult, Layer, LayerStack, Prompt, alpha_bbox

H, W = 80, 120


def make_scene(seed: int = 0) -> dict:
    """Three hard-edged objects, bottom → top: a wide bar, a disc over its right end, a small
    square on the disc; over a smooth gradient. Returns GT stack, composite and visible boxes."""
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    bg = np.stack([0.3 + 0.2 * xx / W, 0.55 + 0.1 * yy / H, 0.35 + 0 * xx], axis=2).astype(np.float32)
    bar = ((xx >= 10) & (xx < 70) & (yy >= 20) & (yy < 44)).astype(np.float32)
    disc = (((xx - 72) ** 2 + (yy - 40) ** 2) <= 17 ** 2).astype(np.float32)
    square = ((xx >= 78) & (xx < 94) & (yy >= 44) & (yy < 60)).astype(np.float32)
    colours = [(0.9, 0.1, 0.1), (0.1, 0.2, 0.9), (0.95, 0.9, 0.1)]
    layers = [Layer.from_rgb(bg, name="background")]
    for a, c, n in zip((bar, disc, square), colours, ("bar", "disc", "square")):
        layers.append(Layer(np.concatenate([np.broadcast_to(np.float32(c), (H, W, 3)), a[..., None]], axis=2), name=n))
    gt = LayerStack(layers)
    image = gt.composite()
    vis_boxes = []
    for k in range(1, 4):
        t = np.prod([1 - gt[m].alpha for m in range(k + 1, 4)], axis=0) if k < 3 else 1.0
        vis_boxes.append(alpha_bbox(gt[k].alpha * t))
    return {"gt": gt, "image": image, "boxes": vis_boxes}


class OraclePipe:
    """A single-object pipeline that knows the scene: exact visible alpha, exact completed background.

    It finds which GT objects are still in the image (the one subset whose render matches), picks
    the prompted object (box IoU or point hit on the input's visible parts) and removes it.
    """

    grounder = None
    multilayer = None
    settings = PipelineSettings()

    def __init__(self, gt: LayerStack) -> None:
        self.proposer = SaliencyProposer()
        self.orderer = OcclusionOrderer()
        self.gt = gt
        self.calls = 0
        self.targets = {}
        full = self._render(range(1, len(gt)))
        for k in range(1, len(gt)):
            self.targets[k] = self._visible(k, range(1, len(gt)))
        self.full = full
        self.checked: list[str] = []

    def check_weights(self, roles=()) -> None:
        """The pipeline contract's weight check (a test double has no weights): records the roles."""
        self.checked += list(roles)

    def _render(self, present) -> np.ndarray:
        return LayerStack([self.gt[0], *[self.gt[k] for k in sorted(present)]]).composite()

    def _visible(self, k: int, present) -> np.ndarray:
        a = self.gt[k].alpha.copy()
        for m in present:
            if m > k:
                a *= 1.0 - self.gt[m].alpha
        return a

    def _which(self, prompt: Prompt) -> int | None:
        best, score = None, 0.3
        for k, vis in self.targets.items():
            if prompt.boxes is not None:
                from layerkit.ops.boxes import box_iou

                s = box_iou(tuple(int(v) for v in prompt.boxes[0]), alpha_bbox(vis))
            else:
                x, y = (int(v) for v in prompt.points[0])
                s = 1.0 if vis[y, x] > 0.5 or (prompt.mask is not None and (prompt.mask & (vis > 0.5)).mean() > 0) else 0.0
            if s > score:
                best, score = k, s
        return best

    def __call__(self, image: np.ndarray, prompt: Prompt, name: str | None = None) -> DecompositionResult:
        self.calls += 1
        image = np.asarray(image, np.float32)
        n = len(self.gt)
        present = next(set(s) for r in range(n - 1, -1, -1) for s in itertools.combinations(range(1, n), r)
                       if np.abs(self._render(s) - image).max() < 3e-3)  # 8-bit files are within half a step
        k = self._which(prompt)
        if k is None or k not in present:
            raise PromptError(f"the segmenter found no object for prompt {prompt.to_dict()}")
        alpha = self._visible(k, present).astype(np.float32)
        bg = self._render(present - {k})
        rgba = np.concatenate([self.gt[k].rgb * (alpha[..., None] > 0), alpha[..., None]], axis=2)
        x0, y0, x1, y1 = alpha_bbox(self.gt[k].alpha)
        roi = (max(0, x0 - 2), max(0, y0 - 2), min(W, x1 + 2), min(H, y1 + 2))
        return DecompositionResult(image=image, foreground=rgba, background=bg, alpha=alpha, mask=alpha > 0.5,
                                   trimap=alpha, layers=LayerStack([Layer.from_rgb(bg), Layer(rgba)]), prompt=prompt, roi=roi)


@pytest.fixture
def scene() -> dict:
    return make_scene()


def test_scene_is_consistent(scene):
    pipe = OraclePipe(scene["gt"])
    np.testing.assert_allclose(pipe.full, scene["image"], atol=1e-6)


@pytest.mark.parametrize("perm", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_auto_order_recovers_depth_and_recomposes(scene, perm):
    pipe = OraclePipe(scene["gt"])
    prompts = [Prompt(boxes=[scene["boxes"][i]]) for i in perm]
    names = [scene["gt"][i + 1].name for i in perm]
    res = peel_layers(pipe, scene["image"], prompts, names=names)
    assert res.stack.names == ["background", "bar", "disc", "square"]
    assert res.psnr >= 40.0
    np.testing.assert_allclose(res.stack[0].rgb, scene["gt"][0].rgb, atol=1e-5)  # the oracle completes everything
    assert [o.status for o in res.objects] == ["layer"] * 3
    assert res.to_dict()["order_front_to_back"] == [perm.index(2), perm.index(1), perm.index(0)]


def test_hidden_parts_completed_by_the_method_are_kept(scene):
    res = peel_layers(OraclePipe(scene["gt"]), scene["image"], [Prompt(boxes=[b]) for b in scene["boxes"]])
    bar = res.stack[1].alpha
    assert bar.sum() == pytest.approx(scene["gt"][1].alpha.sum())  # peeled after the disc: the whole bar


def test_given_and_explicit_order(scene):
    prompts = [Prompt(boxes=[b]) for b in scene["boxes"]]  # bottom → top
    res = peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts, order="given", names=["a", "b", "c"])
    assert res.stack.names == ["background", "c", "b", "a"]  # the first given is the front-most
    assert res.psnr >= 40.0
    res2 = peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts, order=[2, 1, 0], names=["a", "b", "c"])
    assert res2.stack.names == ["background", "a", "b", "c"]
    with pytest.raises(PromptError, match="every prompt index"):
        peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts, order=[0, 1])
    with pytest.raises(PromptError, match="order must be"):
        peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts, order="depth")


def test_first_pass_results_are_reused_where_nothing_changed(scene):
    pipe = OraclePipe(scene["gt"])
    res = peel_layers(pipe, scene["image"], [Prompt(boxes=[b]) for b in scene["boxes"]])
    assert res.objects[2].reused  # the front-most object is peeled from the input: no second call
    assert pipe.calls == 3 + sum(not o.reused for o in res.objects)


def test_identical_prompts_are_reported_and_skipped(scene):
    b = scene["boxes"]
    prompts = [Prompt(boxes=[b[0]]), Prompt(boxes=[b[1]]), Prompt(boxes=[b[1]]), Prompt(boxes=[b[2]])]
    res = peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts)
    assert [o.status for o in res.objects] == ["layer", "layer", "duplicate", "layer"]
    assert "same prompt as object 1" in res.objects[2].detail
    assert len(res.stack) == 4 and res.psnr >= 40.0


def test_same_object_prompted_twice_is_a_duplicate(scene):
    b = scene["boxes"]
    point_on_disc = Prompt(points=[[72, 28]])  # a point prompt for the disc, boxed separately too
    assert scene["gt"][2].alpha[28, 72] == 1.0
    res = peel_layers(OraclePipe(scene["gt"]), scene["image"], [Prompt(boxes=[b[0]]), Prompt(boxes=[b[1]]), point_on_disc])
    assert [o.status for o in res.objects] == ["layer", "layer", "duplicate"]
    assert "alpha IoU" in res.objects[2].detail
    res = peel_layers(OraclePipe(scene["gt"]), scene["image"], [Prompt(boxes=[b[1]]), point_on_disc], order="given")
    assert [o.status for o in res.objects] == ["layer", "empty"]  # peeled already: nothing left there


def test_prompt_that_finds_nothing_is_skipped_and_the_run_goes_on(scene):
    prompts = [Prompt(boxes=[scene["boxes"][0]]), Prompt(boxes=[[100, 2, 118, 14]]), Prompt(boxes=[scene["boxes"][2]])]
    res = peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts, names=["bar", "nothing", "square"])
    assert [o.status for o in res.objects] == ["layer", "empty", "layer"]
    assert "found no object" in res.objects[1].detail
    # bar and square do not touch: no occlusion evidence, so the given order decides (first = front)
    assert res.stack.names == ["background", "square", "bar"]
    assert res.objects[0].layer == 2 and res.objects[2].layer == 1 and res.objects[1].layer is None


def test_more_prompts_than_max_layers_fails_before_any_work(scene):
    pipe = OraclePipe(scene["gt"])
    with pytest.raises(PromptError, match="max_layers=3 allows 2"):
        peel_layers(pipe, scene["image"], [Prompt(boxes=[b]) for b in scene["boxes"]], max_layers=3)
    assert pipe.calls == 0
    for bad in (1, MAX_LAYERS + 1):
        with pytest.raises(PromptError, match="2..20"):
            peel_layers(pipe, scene["image"], [Prompt(boxes=[scene["boxes"][0]])], max_layers=bad)


def test_bad_prompts_fail_before_any_work(scene):
    pipe = OraclePipe(scene["gt"])
    with pytest.raises(PromptError, match="outside"):
        peel_layers(pipe, scene["image"], [Prompt(boxes=[[0, 0, W + 5, 10]])])
    with pytest.raises(PromptError, match="grounding stage"):
        peel_layers(pipe, scene["image"], [Prompt(text="the lamp")])
    with pytest.raises(PromptError, match="names"):
        peel_layers(pipe, scene["image"], [Prompt(boxes=[scene["boxes"][0]])], names=["a", "b"])
    assert pipe.calls == 0


def test_merge_keeps_the_composite(scene):
    prompts = [Prompt(boxes=[b]) for b in scene["boxes"]]
    res = peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts, merge=[(2, 3)], names=["bar", "disc", "square"])
    assert res.stack.names == ["background", "bar", "disc+square"]
    assert res.psnr >= 40.0 and res.objects[2].layer == 2 and res.objects[1].layer == 2
    with pytest.raises(PromptError, match="not valid"):
        peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts, merge=[(2, 7)])
    with pytest.raises(PromptError, match="overlap"):
        peel_layers(OraclePipe(scene["gt"]), scene["image"], prompts, merge=[(1, 2), (2, 3)])


def test_decompose_layers_returns_the_stack(scene):
    stack = decompose_layers(OraclePipe(scene["gt"]), scene["image"], [Prompt(boxes=[b]) for b in scene["boxes"]])
    assert isinstance(stack, LayerStack) and len(stack) == 4


def test_real_classical_pipeline_recomposes_two_objects():
    from layerkit.pipelines.decompose import Pipeline

    c = make_composite(72, 96, seed=3)
    img = c["image"].copy()
    img[8:24, 6:22] = (0.1, 0.1, 0.8)  # a second object: an opaque square in a corner
    stack = Pipeline.from_config("classical").layers(img, [Prompt(boxes=[c["box"]]), Prompt(boxes=[[4, 6, 24, 26]])])
    assert len(stack) == 3 and stack[0].name == "background"
    assert np.all(stack[0].alpha == 1.0)
    assert psnr(stack.composite()[..., :3], img) >= 40.0
