"""Hostile input, command line and API values: every bad input is one ``layerkit: error:`` line and
exit 2, never a traceback or a silently wrong picture. Property-based with hypothesis where the
input space is wide (prompt values, edit arguments, float images).

The config cases (``--config`` a folder, ``pipeline:`` a scalar, non-finite floats) guard
``layerkit/config.py`` through the CLI, so a refactor of the config code keeps them.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_dataset import sources  # noqa: F401  (fixture)

from layerkit import editing
from layerkit.cli import main
from layerkit.errors import EditError, InputImageError, PromptError
from layerkit.io.image import load_image, to_float_image
from layerkit.io.layers import save_stack
from layerkit.types import Layer, LayerStack, Prompt

HSET = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_error(capsys: pytest.CaptureFixture, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("layerkit: error: "), err
    assert "Traceback" not in err[0] and "np.float64" not in err[0]
    for n in needles:
        assert n in err[0], (n, err[0])
    return err[0]


def png_header(path: Path, w: int, h: int) -> Path:
    """A real 8×8 PNG whose header is patched to claim ``w×h``: tests a limit without allocating."""
    Image.new("1", (8, 8), 1).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------ the tracebacks of issue 17
def test_negative_points_only(image_file: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["decompose", image_file, "--point", "10,10,0", "--point", "20,20,0", "-o", str(tmp_path / "o"), "--quiet"]) == 2
    one_error(capsys, "only negative points")
    with pytest.raises(PromptError, match="only negative points"):
        Prompt(points=[[1, 2]], labels=[0]).validate(64, 64)  # refused where it is used, on an image
    assert Prompt(points=[[1, 2]], labels=[0], text="the dog").validate(64, 64).text == "the dog"  # may refine a text
    assert not (tmp_path / "o").exists()


def test_config_folder_and_scalar_sections(image_file: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "o")
    (tmp_path / "cfgdir").mkdir()
    box = ["--box", "10,10,60,60"]
    assert main(["decompose", image_file, *box, "--config", str(tmp_path / "cfgdir"), "-o", out, "--quiet"]) == 2
    one_error(capsys, "is a folder")
    for body, needle in (("pipeline: 3\n", "'pipeline' must be a mapping"),
                         ("pipeline: [1, 2]\n", "'pipeline' must be a mapping"),
                         ("- a\n- b\n", "must be a mapping of sections"), ("segmenter: 7\n", "'segmenter' must be a mapping"),
                         ("\xff\xfe\x00", "not valid")):
        (tmp_path / "c.yaml").write_bytes(body.encode("latin-1"))
        assert main(["decompose", image_file, *box, "--config", str(tmp_path / "c.yaml"), "-o", out, "--quiet"]) == 2
        one_error(capsys, needle)
    for v in (".inf", ".nan", "-.inf"):
        assert main(["decompose", image_file, "--box", "10,10,60,60", "--set", f"trimapper.band_ratio={v}", "-o", out,
                     "--quiet"]) == 2
        one_error(capsys, "finite")
    assert not Path(out).exists()


def test_prompt_file_with_non_numeric_values(image_file: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for rec in ({"box": "abc"}, {"box": [1, 2, "x", 4]}, {"points": [[1, None]]}, {"point": [1, 2], "labels": ["a"]},
                {"box": [0, 0, float("nan"), 9]}, {"boxes": {"a": 1}}, {"text": "x", "labels": [1]}):
        (tmp_path / "p.json").write_text(json.dumps([rec]))
        assert main(["layers", image_file, "--prompts", str(tmp_path / "p.json"), "-o", str(tmp_path / "o"), "--quiet"]) == 2
        one_error(capsys)


def test_mask_over_pixel_limit_obeys_max_pixels(image_file: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    big = png_header(tmp_path / "big.png", 20000, 20000)  # 400 MP claimed: over the default limit and PIL's bomb limit
    out = str(tmp_path / "o")
    assert main(["decompose", image_file, "--mask", str(big), "-o", out, "--quiet"]) == 2
    one_error(capsys, "over the limit", "--max-pixels")
    assert main(["decompose", image_file, "--mask", str(big), "--max-pixels", str(10**9), "-o", out, "--quiet"]) == 2
    msg = one_error(capsys, "cannot read mask")  # the limit was raised: it now fails on the missing data
    assert "over the limit" not in msg


def test_output_dot_and_long_name_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    save_stack(LayerStack([Layer.from_rgb(np.zeros((16, 16, 3), np.float32)), Layer(np.ones((16, 16, 4), np.float32))]), src)
    monkeypatch.chdir(tmp_path)
    assert main(["edit", str(src), "--hide", "1", "-o", ".", "--overwrite"]) == 2
    one_error(capsys, "names an existing folder")
    assert main(["edit", str(src), "--hide", "1", "-o", "n" * 251 + ".ora"]) == 0  # legal name, long temp name
    assert Path("n" * 251 + ".ora").is_file()
    capsys.readouterr()


def test_make_dataset_tiny_max_side(sources: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    fg, bg = sources
    for side in ("1", "0", "-5", "31"):
        assert main(["make-dataset", "--fg-dir", str(fg), "--bg-dir", str(bg), "-o", str(tmp_path / "d"), "--n", "1",
                     "--max-side", side, "--quiet"]) == 2
        one_error(capsys, "--max-side must be at least 32")
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ silent wrong results
@pytest.mark.parametrize("flag,value", [("--rotate", "1:nan"), ("--move", "1:1e309,0"), ("--recolor", "1:sat=nan"),
                                        ("--scale", "1:inf"), ("--duplicate", "1:nan,0"), ("--recolor", "1:hue=-inf"),
                                        ("--reorder", "1:1.5"), ("--move", "1:0x10,0")])
def test_edit_non_finite_arguments(tmp_path: Path, flag: str, value: str, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "src"
    a = np.zeros((16, 16), np.float32)
    a[4:8, 4:8] = 1
    save_stack(LayerStack([Layer.from_rgb(np.zeros((16, 16, 3), np.float32)),
                           Layer.from_rgb(np.ones((16, 16, 3), np.float32), a)]), src)
    assert main(["edit", str(src), flag, value, "-o", str(tmp_path / "e.png")]) == 2
    one_error(capsys, value)
    assert not (tmp_path / "e.png").exists()


def _stack() -> LayerStack:
    a = np.zeros((12, 12), np.float32)
    a[3:7, 2:9] = 1
    return LayerStack([Layer.from_rgb(np.full((12, 12, 3), 0.5, np.float32)),
                       Layer.from_rgb(np.ones((12, 12, 3), np.float32) * 0.2, a)])


nums = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-10**6, 10**6),
                 st.sampled_from(["1", "x", None]))


@HSET
@given(op=st.sampled_from(["move", "duplicate", "rotate", "scale", "recolor"]), a=nums, b=nums, c=nums)
def test_edit_api_values_are_finite_or_refused(op: str, a: object, b: object, c: object) -> None:
    kw = {"move": {"dx": a, "dy": b}, "duplicate": {"dx": a, "dy": b}, "rotate": {"degrees": a},
          "scale": {"factor": (a, b)}, "recolor": {"hue": a, "saturation": b, "brightness": c}}[op]
    try:
        out = getattr(editing, op)(_stack(), 1, **kw)
    except EditError as e:
        assert "\n" not in str(e) and "np.float64" not in str(e)
        return
    for layer in out:
        assert np.isfinite(layer.rgba).all() and layer.rgba.min() >= 0 and layer.rgba.max() <= 1


def test_float_image_out_of_range_is_refused() -> None:
    arr = np.random.default_rng(0).random((16, 16, 3)) * 255.0  # float64 0..255: was silently clipped to white
    with pytest.raises(InputImageError, match=r"\[0, 1\].*divide by 255"):
        load_image(arr)
    np.testing.assert_allclose(load_image(arr / 255.0), arr / 255.0, atol=1e-6)
    np.testing.assert_array_equal(load_image(arr.astype(np.uint8)), arr.astype(np.uint8) / np.float32(255.0))
    with pytest.raises(InputImageError, match="NaN or infinite"):
        load_image(np.full((16, 16, 3), np.nan))
    with pytest.raises(InputImageError, match=r"\[0, 1\]"):
        load_image(np.full((16, 16, 3), -0.5))
    assert load_image(np.full((16, 16, 3), 1.0 + 1e-4)).max() == 1.0  # rounding noise is clipped


@HSET
@given(lo=st.floats(-1e6, 1e6), span=st.floats(0, 1e6))
def test_float_images_in_range_or_refused(lo: float, span: float) -> None:
    arr = np.linspace(lo, lo + span, 64).reshape(8, 8)
    try:
        out = to_float_image(arr)
    except InputImageError as e:
        assert "[0, 1]" in str(e) and "np.float64" not in str(e)
        assert arr.min() < -1e-3 or arr.max() > 1 + 1e-3
        return
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, np.clip(arr, 0, 1), atol=1e-6)


# ------------------------------------------------------------------ prompts: values and messages
def test_nan_mask_is_not_called_empty() -> None:
    m = np.zeros((8, 8))
    m[2:4, 2:4] = np.nan
    with pytest.raises(PromptError, match="NaN") as e:
        Prompt(mask=m)
    assert "empty" not in str(e.value)
    with pytest.raises(PromptError, match="empty"):
        Prompt(mask=np.zeros((8, 8)))


def test_messages_print_plain_numbers() -> None:
    with pytest.raises(PromptError) as e:
        Prompt(boxes=np.array([[300.0, 10, 5, 50]]))
    assert "(300, 10, 5, 50)" in str(e.value) and "np." not in str(e.value)
    with pytest.raises(PromptError) as e:
        Prompt(boxes=[[0, 0, 300, 300]]).validate(100, 100)
    assert "np." not in str(e.value)


value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**4, 10**4), st.text(max_size=3), st.none(),
                  st.booleans())
shape_like = st.one_of(value, st.lists(value, max_size=5), st.lists(st.lists(value, max_size=5), max_size=3))


@HSET
@given(points=shape_like, labels=shape_like, boxes=shape_like, text=st.one_of(st.none(), st.text(max_size=5)))
def test_random_prompt_values_valid_or_prompt_error(points: object, labels: object, boxes: object, text: object) -> None:
    try:
        p = Prompt(points=points, labels=labels if points is not None else None, boxes=boxes, text=text)  # type: ignore[arg-type]
    except PromptError as e:
        assert "\n" not in str(e) and "np.float64" not in str(e) and len(str(e)) < 300
        return
    if p.points is not None:
        assert p.points.shape[1] == 2 and np.isfinite(p.points).all() and set(p.labels.tolist()) <= {0, 1}  # type: ignore[union-attr]
    if p.boxes is not None:
        assert p.boxes.shape[1] == 4 and np.isfinite(p.boxes).all()
    assert not p.is_empty
    try:
        p.validate(64, 64)
    except PromptError as e:
        assert "np.float64" not in str(e)


# ------------------------------------------------------------------ exit codes and messages of reports
class FailingPipe:
    def __call__(self, image: str, prompt: object) -> None:
        raise RuntimeError("model exploded")


def test_bench_all_failing_says_so(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_eval_composites import write_data

    import layerkit.cli.bench

    data = write_data(tmp_path / "data", n=2)
    monkeypatch.setattr(layerkit.cli.bench, "spec_pipeline", lambda args, spec: FailingPipe())
    out = tmp_path / "bench"
    assert main(["bench", "--data", str(data), "--configs", "classical", "-o", str(out), "--quiet", "--thumb-height", "16"]) == 1
    err = capsys.readouterr().err
    assert "every sample of classical failed (2)" in err and "model exploded" in err
    assert "model exploded" in (out / "results.json").read_text()  # the report is written, with the errors


def test_eval_layers_empty_or_wrong_predictions(sources: tuple[Path, Path], tmp_path: Path,  # noqa: F811
                                                capsys: pytest.CaptureFixture) -> None:
    from layerkit.evaluation.dataset import make_dataset

    fg, bg = sources
    data = make_dataset(fg, bg, tmp_path / "multi", n=1, objects=(2, 2), seed=1, occlusion=(0.0, 0.6), cover=(0.08, 0.2))
    (tmp_path / "empty").mkdir()
    out = tmp_path / "rep"
    assert main(["eval-layers", str(data), "--pred-dir", str(tmp_path / "empty"), "-o", str(out), "--quiet"]) == 2
    one_error(capsys, "is empty")
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "9999.psd").write_bytes(b"x")
    assert main(["eval-layers", str(data), "--pred-dir", str(tmp_path / "wrong"), "-o", str(out), "--quiet"]) == 1
    assert "no sample was scored (1); first error:" in capsys.readouterr().err
