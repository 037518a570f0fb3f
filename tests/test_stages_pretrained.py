"""Pretrained stages: hub resolution, grounders and segmenters loaded from tiny saved models.

Each stage loads a tiny random model of the real class through its real loader and must give
what the library gives when called directly; the glue (box cleaning, SAM query planning,
multimask choice, mask prompts) is checked against exact expected values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_composite
from test_stages_pretrained_factories import build_tiny_sam, tiny_model

from layerkit.errors import ConfigError, MissingModelError, PromptError
from layerkit.io.image import to_pil, to_uint8
from layerkit.modules import hub
from layerkit.modules.grounder.phrases import to_detections
from layerkit.types import Prompt


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    return lambda kind: tiny_model(kind, tmp_path_factory)


@pytest.fixture
def tiny_sam_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from segment_anything import sam_model_registry

    monkeypatch.setitem(sam_model_registry, "vit_tiny", build_tiny_sam)


# ---------------------------------------------------------------------------------------------- hub
def _fake_cache(root: Path, repo: str, files: list[str]) -> Path:
    d = root / ("models--" + repo.replace("/", "--"))
    (d / "refs").mkdir(parents=True)
    (d / "refs" / "main").write_text("abc123")
    snap = d / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    for f in files:
        (snap / f).write_text("{}")
    return snap


def test_locate_finds_local_folders_and_cached_hub_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    snap = _fake_cache(tmp_path / "cache", "acme/tiny", ["config.json", "model.safetensors"])
    _fake_cache(tmp_path / "cache", "acme/noweights", ["config.json"])
    local = tmp_path / "local"
    local.mkdir()
    (local / "config.json").write_text("{}")
    assert hub.locate(str(local)) is None  # no weight file yet
    (local / "model.safetensors").write_text("x")
    assert hub.locate(str(local)) == local
    assert hub.locate("acme/tiny") == snap
    assert hub.locate("acme/noweights") is None
    assert hub.locate("acme/absent") is None
    assert hub.pretrained_source("acme/tiny") == (str(snap), {"local_files_only": True})
    assert hub.missing_model("acme/tiny", "grounder.model") == []


def test_missing_model_is_offline_fast_and_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not hub.downloads_allowed()  # HF_HUB_OFFLINE=1 (conftest)
    t0 = time.perf_counter()
    (msg,) = hub.missing_model("IDEA-Research/grounding-dino-base", "grounder.model")
    assert time.perf_counter() - t0 < 2.0
    assert "grounder.model=DIR" in msg and "hf download IDEA-Research/grounding-dino-base" in msg
    (msg,) = hub.missing_model(str(tmp_path / "nope"), "matter.model")
    assert msg.startswith(f"matter.model={tmp_path / 'nope'}: folder does not exist")
    with pytest.raises(MissingModelError, match="segmenter.model"):
        hub.pretrained_source("facebook/sam-vit-huge", "segmenter.model")
    assert hub.missing_file(str(tmp_path / "sam.pth"), "segmenter.checkpoint")[0].startswith("segmenter.checkpoint=")


def test_path_dtype_and_device_rules() -> None:
    assert [hub.looks_like_path(r) for r in ("facebook/sam-vit-huge", "/models/sam", "./sam", "a/b/c", "sam.pth", "gpt2")] == \
        [False, True, True, True, True, False]
    assert hub.resolve_dtype("auto", "cpu") == torch.float32
    assert hub.resolve_dtype("bf16", "cuda") == torch.bfloat16
    assert hub.resolve_dtype("fp16", "cuda:1") == torch.float16
    with pytest.raises(ConfigError, match="not supported on CPU"):
        hub.resolve_dtype("float16", "cpu")
    with pytest.raises(ConfigError, match="unknown dtype"):
        hub.resolve_dtype("int8", "cpu")
    assert hub.resolve_device("cpu") == "cpu"
    assert hub.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------- grounders
def test_to_detections_clips_sorts_and_suppresses() -> None:
    boxes = np.array([[10, 10, 50, 50], [12, 10, 52, 50], [-20, 0, 30, 200], [5, 5, 5.5, 40], [60, 60, 90, 90]], float)
    det = to_detections(boxes, np.array([0.5, 0.9, 0.7, 0.99, 0.2]), ["a", "b", "c", "d", "e"], (100, 80), nms_iou=0.7)
    np.testing.assert_array_equal(det.boxes, [[12, 10, 52, 50], [0, 0, 30, 100], [60, 60, 80, 90]])
    np.testing.assert_allclose(det.scores, [0.9, 0.7, 0.2])
    assert det.labels == ["b", "c", "e"]
    assert to_detections(boxes, np.arange(5.0) / 10, list("abcde"), (100, 80), nms_iou=1.0, max_detections=2).labels == ["e", "c"]


def test_grounding_dino_loads_lazily_and_matches_the_library(tiny: Callable[[str], Path]) -> None:
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    from layerkit.modules.grounder.grounding_dino import GroundingDinoGrounder

    d = tiny("grounding_dino")
    img = make_composite()["image"]
    g = GroundingDinoGrounder(str(d), box_threshold=0.0, text_threshold=0.0, nms_iou=1.0, max_detections=100).to("cpu")
    assert g.missing_weights() == [] and g._loaded is None
    det = g(img, "A red disc")
    proc, model = AutoProcessor.from_pretrained(d), GroundingDinoForObjectDetection.from_pretrained(d).eval()
    inputs = proc(images=to_pil(img), text="a red disc.", return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    ref = proc.post_process_grounded_object_detection(out, inputs["input_ids"], threshold=0.0, text_threshold=0.0,
                                                      target_sizes=[(96, 128)])[0]
    rb = np.clip(ref["boxes"].numpy(), 0, [128, 96, 128, 96])
    ok = ((rb[:, 2] - rb[:, 0]) >= 1) & ((rb[:, 3] - rb[:, 1]) >= 1)
    best = np.argmax(np.where(ok, ref["scores"].numpy(), -1))
    np.testing.assert_allclose(det.boxes[0], rb[best], atol=1e-4)
    np.testing.assert_allclose(np.sort(det.scores)[::-1], np.sort(ref["scores"].numpy()[ok])[::-1], atol=1e-6)
    assert len(det) == int(ok.sum()) and all(label == "a red disc" for label in det.labels)


def test_owlv2_matches_the_library_with_one_query_per_phrase(tiny: Callable[[str], Path]) -> None:
    from transformers import AutoProcessor, Owlv2ForObjectDetection

    from layerkit.modules.grounder.owlv2 import Owlv2Grounder

    d = tiny("owlv2")
    img = make_composite()["image"]
    det = Owlv2Grounder(str(d), box_threshold=0.0, nms_iou=1.0, max_detections=100)(img, "a red disc. glass")
    proc, model = AutoProcessor.from_pretrained(d), Owlv2ForObjectDetection.from_pretrained(d).eval()
    inputs = proc(images=to_pil(img), text=[["a red disc", "glass"]], return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    ref = proc.post_process_grounded_object_detection(out, threshold=0.0, target_sizes=[(96, 128)],
                                                      text_labels=[["a red disc", "glass"]])[0]
    rb = np.clip(ref["boxes"].numpy(), 0, [128, 96, 128, 96])
    ok = ((rb[:, 2] - rb[:, 0]) >= 1) & ((rb[:, 3] - rb[:, 1]) >= 1)
    assert len(det) == int(ok.sum())
    np.testing.assert_allclose(det.scores, np.sort(ref["scores"].numpy()[ok])[::-1], atol=1e-6)
    assert set(det.labels) <= {"a red disc", "glass"}


# ---------------------------------------------------------------------------------------------- SAM glue
def test_plan_queries_policy() -> None:
    from layerkit.ops.sam_prompts import plan_queries

    c = make_composite()
    one_point = plan_queries(Prompt(points=[[64, 48]]))
    assert one_point.boxes == [None] and one_point.multimask
    two_boxes = plan_queries(Prompt(boxes=[[0, 0, 10, 10], [5, 5, 20, 30]], points=[[6, 6]]))
    assert [b.tolist() for b in two_boxes.boxes] == [[0, 0, 10, 10], [5, 5, 20, 30]] and not two_boxes.multimask
    assert plan_queries(Prompt(points=[[64, 48]]), multimask="never").multimask is False
    assert plan_queries(Prompt(boxes=[[0, 0, 10, 10]]), multimask="always").multimask is True
    mask = c["alpha"] > 0.5
    refined = plan_queries(Prompt(mask=mask))
    assert refined.boxes[0].tolist() == list(Prompt(mask=mask).bbox()) and refined.mask is not None
    assert plan_queries(Prompt(mask=mask), refine_mask=False) is None
    with pytest.raises(PromptError, match="ground the text"):
        plan_queries(Prompt(text="the dog"))
    with pytest.raises(ConfigError, match="multimask"):
        plan_queries(Prompt(points=[[1, 1]]), multimask="on")


def test_pick_best_and_mask_logits_exact() -> None:
    from layerkit.ops.sam_prompts import MASK_LOGIT, mask_logits, pick_best

    m = np.zeros((3, 2, 4), bool)
    m[0, 0, 0] = m[1, 1, 1] = m[2, :, 3] = True
    q2 = np.zeros((3, 2, 4), bool)
    q2[2, 0, 2] = True
    out = pick_best([m, q2], [np.array([0.1, 0.8, 0.3]), np.array([0.0, 0.1, 0.9])])
    assert np.argwhere(out).tolist() == [[0, 2], [1, 1]]
    mask = np.zeros((4, 8), bool)
    mask[:, :4] = True
    lo = mask_logits(mask, 8)
    assert lo.shape == (1, 8, 8)
    assert (lo[0, :4, :4] == MASK_LOGIT).all() and (lo[0, :4, 4:] == -MASK_LOGIT).all() and (lo[0, 4:] == -MASK_LOGIT).all()


# ---------------------------------------------------------------------------------------------- segmenters
def test_sam_loads_weights_only_checkpoint_and_matches_the_predictor(tiny: Callable[[str], Path], tiny_sam_registry: None) -> None:
    from segment_anything import SamPredictor

    from layerkit.modules.segmenter.sam import SamSegmenter

    c = make_composite()
    ckpt = tiny("sam") / "sam_tiny.pth"
    seg = SamSegmenter(str(ckpt), model_type="vit_tiny").to("cpu")
    assert seg.missing_weights() == [] and seg._loaded is None
    box = Prompt(boxes=[c["box"]])
    mask = seg(c["image"], box)
    predictor = SamPredictor(build_tiny_sam(str(ckpt)))
    predictor.set_image(to_uint8(c["image"]))
    ref, _, _ = predictor.predict(box=c["box"], multimask_output=False)
    assert mask.dtype == bool and mask.shape == (96, 128)
    np.testing.assert_array_equal(mask, ref[0])
    ref3, scores, _ = predictor.predict(point_coords=np.array([[64.0, 48.0]]), point_labels=np.array([1]))
    np.testing.assert_array_equal(seg(c["image"], Prompt(points=[[64, 48]])), ref3[int(np.argmax(scores))])
    other = [0, 0, 40, 40]
    both = seg(c["image"], Prompt(boxes=[c["box"], other], points=[[64, 48], [2, 90]], labels=[1, 0]))
    one = seg(c["image"], Prompt(boxes=[c["box"]], points=[[64, 48], [2, 90]], labels=[1, 0]))
    two = seg(c["image"], Prompt(boxes=[other], points=[[64, 48], [2, 90]], labels=[1, 0]))
    np.testing.assert_array_equal(both, one | two)
    assert seg(c["image"], Prompt(mask=c["alpha"] > 0.5)).shape == (96, 128)
    np.testing.assert_array_equal(SamSegmenter(str(ckpt), "vit_tiny", refine_mask=False)(c["image"], Prompt(mask=c["alpha"] > 0.5)),
                                  c["alpha"] >= 0.5)


def test_sam_errors_are_one_line(tmp_path: Path, tiny_sam_registry: None) -> None:
    from layerkit.modules.segmenter.sam import SamSegmenter

    (msg,) = SamSegmenter(str(tmp_path / "sam_vit_h.pth")).missing_weights()
    assert "segmenter.checkpoint=" in msg and "dl.fbaipublicfiles.com" in msg
    with pytest.raises(ConfigError, match="vit_b, vit_h, vit_l, vit_tiny"):
        SamSegmenter(str(tmp_path / "x.pth"), model_type="vit_x")
    bad = tmp_path / "bad.pth"
    torch.save({"not_sam": torch.zeros(1)}, bad)
    with pytest.raises(MissingModelError, match="cannot load segmenter.checkpoint="):
        SamSegmenter(str(bad), model_type="vit_tiny")(make_composite()["image"], Prompt(points=[[3, 3]]))


def test_hf_sam_matches_the_library_and_takes_every_prompt(tiny: Callable[[str], Path]) -> None:
    from transformers import SamModel, SamProcessor

    from layerkit.modules.segmenter.sam_hf import HFSamSegmenter

    c = make_composite()
    d = tiny("sam_hf")
    seg = HFSamSegmenter(str(d)).to("cpu")
    mask = seg(c["image"], Prompt(boxes=[c["box"]]))
    proc, model = SamProcessor.from_pretrained(d), SamModel.from_pretrained(d).eval()
    inputs = proc(images=to_uint8(c["image"]), input_boxes=[[c["box"].tolist()]], return_tensors="pt")
    with torch.no_grad():
        out = model(pixel_values=inputs["pixel_values"], input_boxes=inputs["input_boxes"].float(), multimask_output=False)
    ref = proc.post_process_masks(out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])[0][0, 0]
    np.testing.assert_array_equal(mask, ref.numpy())
    mixed = Prompt(boxes=[c["box"], [0, 0, 40, 40]], points=[[64, 48], [2, 90]], labels=[1, 0], mask=c["alpha"] > 0.5)
    for p in (mixed, Prompt(points=[[64, 48]]), Prompt(mask=c["alpha"] > 0.5)):
        m = seg(c["image"], p)
        assert m.shape == (96, 128) and m.dtype == bool
