"""The app's logic without a browser: sessions (clicks, refinement, undo, layers, edits, downloads),
the click refiner, the plain-GrabCut peer, the NoC protocol and bad input."""

from __future__ import annotations

import struct
import zipfile
import zlib

import numpy as np
import pytest
from conftest import make_composite

from layerkit import LayerStack, Pipeline
from layerkit.app.interactive import Click, ClickRefiner, GrabCutPeer, click_segmenter
from layerkit.app.noc import Trace, mask_iou, next_click, simulate, summarise
from layerkit.app.session import Session, error_message
from layerkit.errors import EditError, InputImageError, LayerkitError, OutputError, PromptError


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_config("classical")


def two_discs(h: int = 96, w: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A red disc (left) and a yellow disc (right) on a blue-green background; returns image and the two masks."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([0.1 + 0.05 * np.sin(xx / 6), 0.4 + 0.1 * np.cos(yy / 5), 0.6 + 0 * xx], axis=2).astype(np.float32)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    left = (xx - 45) ** 2 + (yy - 48) ** 2 <= 24 ** 2
    right = (xx - 118) ** 2 + (yy - 48) ** 2 <= 20 ** 2
    img[left] = [0.9, 0.15, 0.1]
    img[right] = [0.95, 0.85, 0.1]
    return np.clip(img, 0, 1), left, right


def huge_png(path: str, w: int, h: int) -> None:
    """A PNG whose header claims ``w × h`` pixels (no pixel data): what a decompression bomb looks like to a reader."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------- protocol
def test_next_click_targets_the_largest_error_region_interior():
    gt = np.zeros((40, 60), bool)
    gt[5:35, 5:25] = True
    pred = np.zeros_like(gt)
    c = next_click(pred, gt)
    assert c is not None and c.positive and 13 <= c.x <= 16 and 13 <= c.y <= 26  # on its medial axis
    pred = gt.copy()
    pred[10:30, 35:58] = True  # a larger wrong-background block
    c = next_click(pred, gt)
    assert c is not None and not c.positive and 35 <= c.x < 58 and 10 <= c.y < 30
    assert next_click(gt, gt) is None


def test_simulate_and_summarise_count_clicks():
    gt = np.zeros((30, 30), bool)
    gt[5:25, 5:25] = True

    def perfect_after_two(image, clicks, mask):
        return gt.copy() if len(clicks) >= 2 else gt & (np.arange(30)[:, None] < 12)

    tr = simulate(perfect_after_two, np.zeros((30, 30, 3), np.float32), gt, max_clicks=20)
    assert tr.ious[0] < 0.85 and tr.ious[1] == 1.0 and len(tr.ious) == 2  # stops at a perfect mask
    assert tr.noc(0.90) == 2 and tr.iou_at(5) == 1.0
    never = Trace(ious=[0.1, 0.2, 0.3])
    assert never.noc(0.9) == 3
    s = summarise([tr, never], at=(1, 3))
    assert s["NoC@90"] == pytest.approx(2.5) and s["fail@90"] == 0.5 and s["IoU@1"] == pytest.approx((tr.ious[0] + 0.1) / 2)
    assert mask_iou(gt, gt) == 1.0 and mask_iou(gt, ~gt) == 0.0


def test_refiner_first_click_then_refinement_from_the_current_mask(pipe):
    img, left, right = two_discs()
    ref = ClickRefiner(pipe.segmenter)
    m1 = ref(img, [Click(45, 48)])
    assert mask_iou(m1, left) > 0.85 and not (m1 & right).any()
    # the current state matters: a mask that also holds the right disc keeps what a click doesn't touch
    both = left | right
    m2 = ref(img, [Click(45, 48), Click(118, 48, False)], both)
    assert mask_iou(m2, left) > 0.85 and not (m2 & right).any()  # the negative click removed the right disc
    m3 = ref(img, [Click(45, 48), Click(118, 48, True)], left.copy())
    assert mask_iou(m3, both) > 0.85  # a positive click on a missed part adds it to the current mask
    assert not ref(img, [Click(5, 5, False)]).any()  # only negative clicks: no object yet
    with pytest.raises(ValueError):
        ref(img, [])


def test_refinement_beats_the_plain_grabcut_peer_on_a_synthetic_composite(pipe):
    comp = make_composite(96, 128)
    gt = comp["alpha"] >= 0.5
    ours = simulate(ClickRefiner(pipe.segmenter), comp["image"], gt, max_clicks=5)
    peer = simulate(GrabCutPeer(), comp["image"], gt, max_clicks=5)
    assert ours.noc(0.85) <= peer.noc(0.85) and max(ours.ious) > 0.85
    assert all(0.0 <= v <= 1.0 for v in peer.ious)


# ---------------------------------------------------------------------------- sessions
def test_session_clicks_refine_undo_and_layers(pipe):
    img, left, right = two_discs()
    s = Session.from_array(img)
    s.click(pipe, 45, 48)
    obj = s.current()
    assert obj.ready and mask_iou(obj.mask, left) > 0.8 and obj.rgba.shape == img.shape[:2] + (4,)
    first = obj.mask.copy()
    s.click(pipe, 118, 48, positive=True)  # refine: add the right disc to the same object
    assert len(s.current().clicks) == 2 and s.current().mask[right].mean() > 0.8
    assert s.undo() and np.array_equal(s.current().mask, first) and len(s.current().clicks) == 1
    s.new_object()
    s.click(pipe, 118, 48)
    assert len(s.objects) == 2 and s.active == 1 and mask_iou(s.objects[1].mask, right) > 0.8
    stack = s.stack()
    assert stack.names == ["background", "object 1", "object 2"]
    # the background has both objects filled in: no red or yellow left where they were
    bg = s.background()
    assert bg[left][:, 0].mean() < 0.6 and bg[right][:, 1].mean() < 0.75
    s.move_layer(-1)
    assert s.stack().names == ["background", "object 2", "object 1"] and s.active == 0
    s.rename("sun")
    s.toggle_visible()
    assert not s.stack()[1].visible and s.stack().names[1] == "sun"
    s.set_edit(10, -5, 1.0, 90.0, 1.0)
    moved = s.stack()[1].rgba[..., 3]
    assert moved[:, :100].sum() == pytest.approx(0.0, abs=1e-3) or s.stack()[1].bbox[0] > s.stack(edited=False)[1].bbox[0]
    assert s.stack()[1].bbox[0] == s.stack(edited=False)[1].bbox[0] + 10
    for _ in range(10):
        s.undo()
    assert len(s.objects) == 1


@pytest.mark.parametrize("fmt", ["psd", "ora", "zip"])
def test_session_export_reads_back_with_names_and_order(pipe, tmp_path, fmt):
    img, left, right = two_discs()
    s = Session.from_array(img)
    s.click(pipe, 45, 48)
    s.rename("red disc")
    s.new_object()
    s.box(pipe, (95, 25, 142, 72))
    s.rename("yellow disc")
    path = s.export(fmt, tmp_path)
    assert path.endswith("." + fmt)
    if fmt == "zip":
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            assert {"layer_00.png", "layer_01.png", "layer_02.png", "layers.json"} <= names
            z.extractall(tmp_path / "unzipped")
        back = LayerStack.load(tmp_path / "unzipped")
    else:
        back = LayerStack.load(path)
    assert back.names == ["background", "red disc", "yellow disc"]
    assert np.abs(back[2].alpha - s.stack()[2].alpha).max() < 1 / 255 + 1e-6
    with pytest.raises(OutputError, match="unknown download format"):
        s.export("gif", tmp_path)


def test_session_bad_input_gives_one_line_errors(pipe, tmp_path):
    s = Session()
    with pytest.raises(PromptError, match="upload a photo first"):
        s.click(pipe, 1, 1)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(InputImageError, match="not an image"):
        s.load(str(text), pipe.settings.max_pixels)
    bomb = tmp_path / "bomb.png"
    huge_png(str(bomb), 20000, 10000)  # 200 MP
    with pytest.raises(InputImageError, match="decompression-bomb"):
        s.load(str(bomb), pipe.settings.max_pixels)
    img, _, _ = two_discs()
    s = Session.from_array(img)
    with pytest.raises(PromptError, match="outside"):
        s.click(pipe, 500, 5)
    with pytest.raises(PromptError, match="grounding stage"):
        s.phrase(pipe, "the red disc")
    with pytest.raises(PromptError, match="type a phrase"):
        s.phrase(pipe, "  ")
    with pytest.raises(OutputError, match="nothing to download"):
        s.export("psd", tmp_path)
    with pytest.raises(EditError):
        s.set_edit(0, 0, 1.0, 0, 1.0)
    with pytest.raises(EditError, match="no object to delete"):
        Session.from_array(img).delete()
    assert s.objects == [] or not s.objects[0].ready  # failed prompts left no half-made layer
    s.click(pipe, 45, 48)
    with pytest.raises(EditError, match="scale must be"):
        s.set_edit(0, 0, 0.0, 0, 1.0)
    s.new_object()
    with pytest.raises(EditError, match="already named"):
        s.rename("object 1")


def test_error_message_is_one_line():
    assert error_message(PromptError("bad box")) == "bad box"
    msg = error_message(RuntimeError("boom\nwith a second line"))
    assert "\n" not in msg and "RuntimeError" in msg and "boom" in msg
    assert issubclass(PromptError, LayerkitError)


def test_cli_app_without_gradio_names_the_extra(monkeypatch, capsys):
    import sys

    from layerkit.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the app extra were not installed
    assert main(["app", "--port", "7999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerkit: error:") and "layerkit[app]" in err and len(err.strip().splitlines()) == 1


def test_cli_app_help_lists_launch_options(capsys):
    from layerkit.cli import main

    with pytest.raises(SystemExit):
        main(["app", "--help"])
    out = capsys.readouterr().out
    for opt in ("--host", "--port", "--config", "--set", "--share"):
        assert opt in out


def test_prompt_json_errors():
    from layerkit.app.prompts import prompt_from_json, prompts_from_json

    p, name = prompt_from_json('{"points": [[5, 6]], "labels": [0], "name": "x"}')
    assert p.labels.tolist() == [0] and name == "x"
    for bad, match in (("{", "not valid JSON"), ("[1]", "JSON object"), ('{"box": [1, 2, 3, 4]}', "unknown prompt key"),
                       ('{"boxes": [[5, 5, 1, 1]]}', "inverted"), ("{}", "empty prompt")):
        with pytest.raises(PromptError, match=match):
            prompt_from_json(bad)
    with pytest.raises(PromptError, match="non-empty JSON list"):
        prompts_from_json("[]")
    prompts, names = prompts_from_json('[{"points": [[1, 2]]}, {"boxes": [[0, 0, 4, 4]], "name": "b"}]')
    assert names == ["object_1", "b"] and len(prompts) == 2


def test_benchmark_script_runs_on_tiny_sets(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    from PIL import Image

    comp = make_composite(64, 80)
    u8 = (comp["image"] * 255 + 0.5).astype(np.uint8)
    a8 = (comp["alpha"] * 255 + 0.5).astype(np.uint8)
    (tmp_path / "comp" / "0000").mkdir(parents=True)
    Image.fromarray(u8).save(tmp_path / "comp" / "0000" / "composite.png")
    Image.fromarray(a8).save(tmp_path / "comp" / "0000" / "gt_alpha.png")
    (tmp_path / "real").mkdir()
    Image.fromarray(u8).save(tmp_path / "real" / "X1_input.png")
    Image.fromarray(a8).save(tmp_path / "real" / "X1_alpha.png")
    Image.fromarray(u8).save(tmp_path / "photo.png")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "interactive.py"
    spec = importlib.util.spec_from_file_location("bench_interactive", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    assert mod.main(["--composites", str(tmp_path / "comp"), "--real", str(tmp_path / "real"), "--max-clicks", "3",
                     "--latency", str(tmp_path / "photo.png"), "--side", "80", "--latency-clicks", "2",
                     "-o", str(out), "--quiet"]) == 0
    doc = json.loads((out / "interactive.json").read_text())
    for name in ("composites", "real_alpha"):
        means = doc["noc"][name]["means"]
        assert set(means) == {"layerkit", "plain GrabCut"} and 1 <= means["layerkit"]["NoC@90"] <= 3
        assert 0.0 <= means["plain GrabCut"]["IoU@1"] <= 1.0
    assert doc["latency"]["size"] == [80, 64] and len(doc["latency"]["refine_click_s"]) == 1
    assert "NoC@90" in (out / "interactive.md").read_text()


def test_undo_history_shares_arrays_and_is_bounded_for_big_photos(pipe):
    img, left, _ = two_discs()
    s = Session.from_array(img)
    s.click(pipe, 45, 48)
    rgba = s.current().rgba
    s.rename("disc")  # a step that changes no array
    assert s.history[-1][0][0].rgba is rgba  # the snapshot shares the unchanged layer
    assert s.undo() and s.current().name == "object 1" and s.current().rgba is rgba
    big = Session(image=np.empty((4000, 3000, 3), np.float32))  # 12 MP (pages untouched)
    assert 3 <= big.undo_limit() < 30 and s.undo_limit() == 30


def test_first_click_runs_at_the_box_working_size() -> None:
    """classical segments a click at two sizes (point_select), point_max_side 640 runs it at 640 px;
    the app's first click keeps one run at the 370 px working size (its 3 s budget), on a copy: the
    pipeline's segmenter is untouched."""
    pipe = Pipeline.from_config("classical", ["segmenter.point_max_side=640"])
    assert pipe.settings.point_whole
    seg = pipe.segmenter
    assert seg.point_max_side == 640 and seg.point_select == (370, 640)
    app_seg = click_segmenter(seg)
    assert app_seg is not seg and app_seg.point_max_side is None and app_seg.point_select == ()
    assert app_seg.max_side == seg.max_side
    assert seg.point_max_side == 640 and seg.point_select == (370, 640)
    assert click_segmenter(app_seg) is app_seg            # nothing to change: the same object
    calls: list[tuple[int, int]] = []

    class Spy:
        point_max_side = None

        def __call__(self, image: np.ndarray, prompt: object) -> np.ndarray:
            calls.append(image.shape[:2])
            return np.ones(image.shape[:2], bool)

    spy = Spy()
    assert click_segmenter(spy) is spy
    img, _, _ = two_discs()
    ClickRefiner(click_segmenter(spy))(img, [Click(40.0, 40.0, True)])
    assert calls == [img.shape[:2]]
