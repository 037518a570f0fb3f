"""ViTMatte (tiny saved model, padding, ROI, tiles) and the Matte Anything transparency trimap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_composite
from test_stages_pretrained_factories import tiny_model

from layerkit.modules.base import Detections
from layerkit.modules.trimapper.morphology import MorphologyTrimapper
from layerkit.modules.trimapper.transparency import TransparencyTrimapper, widen_transparent
from layerkit.types import Prompt


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    return lambda kind: tiny_model(kind, tmp_path_factory)


def _trimap(h: int = 96, w: int = 128) -> np.ndarray:
    return MorphologyTrimapper(band=4)(make_composite(h, w)["alpha"] > 0.5)


# ---------------------------------------------------------------------------------------------- ViTMatte glue
def test_tile_starts_and_ramp_exact() -> None:
    from layerkit.modules.matter.vitmatte import ramp, tile_starts

    assert tile_starts(1000, 512, 64) == [0, 448, 488]
    assert tile_starts(512, 512, 64) == [0]
    assert tile_starts(96, 64, 16) == [0, 32]
    assert tile_starts(130, 64, 16) == [0, 48, 66]
    np.testing.assert_allclose(ramp(6, 2), [1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="larger than overlap"):
        tile_starts(100, 16, 16)


def test_matte_input_layout_exact() -> None:
    from layerkit.modules.matter.vitmatte import matte_input

    img = np.full((2, 3, 3), [0.25, 0.5, 1.0], np.float32)
    tri = np.array([[0, 0.5, 1], [1, 1, 0]], np.float32)
    x = matte_input(img, tri, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert x.shape == (1, 4, 2, 3) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, :3, 0, 0].numpy(), [-0.5, 0.0, 1.0])
    np.testing.assert_array_equal(x[0, 3].numpy(), tri)


# ---------------------------------------------------------------------------------------------- ViTMatte model
def test_vitmatte_pads_to_32_and_crops_back(tiny: Callable[[str], Path]) -> None:
    from transformers import VitMatteForImageMatting

    from layerkit.modules.matter.vitmatte import VitMatteMatter, matte_input

    d = tiny("vitmatte")
    c = make_composite(50, 70)
    tri = _trimap(50, 70)
    matter = VitMatteMatter(str(d)).to("cpu")
    out = matter.matte_tile(c["image"], tri)
    model = VitMatteForImageMatting.from_pretrained(d).eval()
    x = torch.nn.functional.pad(matte_input(c["image"], tri, (0.5,) * 3, (0.5,) * 3), (0, 26, 0, 14))  # → 64×96
    with torch.no_grad():
        ref = model(pixel_values=x).alphas[0, 0, :50, :70].numpy()
    assert out.shape == (50, 70)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    alpha = matter(c["image"], tri)
    assert alpha.dtype == np.float32 and alpha.shape == (50, 70)
    assert (alpha[tri == 1.0] == 1.0).all() and (alpha[tri == 0.0] == 0.0).all()
    unknown = tri == 0.5
    np.testing.assert_allclose(alpha[unknown], np.clip(ref[unknown], 0, 1), atol=1e-6)  # ROI covers all: same pass


def test_vitmatte_skips_the_model_without_unknown_pixels(tmp_path: Path) -> None:
    from layerkit.modules.matter.vitmatte import VitMatteMatter

    matter = VitMatteMatter(str(tmp_path / "absent"))  # would fail to load
    tri = np.zeros((20, 30), np.float32)
    tri[5:10, 5:20] = 1.0
    np.testing.assert_array_equal(matter(np.zeros((20, 30, 3), np.float32), tri), tri)
    assert matter._loaded is None


def test_vitmatte_roi_and_tiles(tiny: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from layerkit.modules.matter.vitmatte import VitMatteMatter, tile_starts

    img = np.random.default_rng(0).random((300, 400, 3)).astype(np.float32)
    tri = np.zeros((300, 400), np.float32)
    tri[50:250, 50:350] = 0.5
    tri[60:240, 60:340] = 1.0
    matter = VitMatteMatter(str(tiny("vitmatte")), tile=64, overlap=16, context=10)
    regions: list[tuple[int, int]] = []
    tiles: list[tuple[int, int]] = []
    real_region, real_tile = matter.matte_region, matter.matte_tile

    def spy_region(image: np.ndarray, trimap: np.ndarray) -> Any:
        regions.append(trimap.shape)
        return real_region(image, trimap)

    def spy_tile(image: np.ndarray, trimap: np.ndarray) -> Any:
        tiles.append(trimap.shape)
        return real_tile(image, trimap)

    monkeypatch.setattr(matter, "matte_region", spy_region)
    monkeypatch.setattr(matter, "matte_tile", spy_tile)
    alpha = matter(img, tri)
    assert regions == [(220, 320)]  # unknown box 200×300 plus 10 px of context on each side
    sub = tri[40:260, 40:360]
    starts = [(ty, tx) for ty in tile_starts(220, 64, 16) for tx in tile_starts(320, 64, 16)]
    with_unknown = sum(bool((sub[ty:ty + 64, tx:tx + 64] == 0.5).any()) for ty, tx in starts)
    assert len(starts) == 35 and with_unknown == 27  # the 8 tiles inside the sure foreground are skipped
    assert tiles == [(64, 64)] * with_unknown
    assert np.isfinite(alpha).all() and (alpha[tri == 1] == 1).all() and (alpha[tri == 0] == 0).all()


# ---------------------------------------------------------------------------------------------- transparency
def test_widen_transparent_exact() -> None:
    tri = np.zeros((6, 8), np.float32)
    tri[1:5, 1:7] = 0.5
    tri[2:4, 2:6] = 1.0
    mask = np.zeros((6, 8), bool)
    mask[1:5, 1:7] = True
    out = widen_transparent(tri, mask, np.array([[4.2, 0, 8, 3]]))
    expected = tri.copy()
    expected[1:3, 4:7] = 0.5
    np.testing.assert_array_equal(out, expected)
    out = widen_transparent(tri, np.zeros((6, 8), bool), np.array([[0, 0, 3.5, 6]]), margin=0)
    expected = tri.copy()
    expected[2:4, 2:4] = 0.5  # without a mask, only sure-FG pixels are widened
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(widen_transparent(tri, mask, np.zeros((0, 4))), tri)


def test_transparency_trimapper_extends_morphology() -> None:
    mask = make_composite()["alpha"] > 0.5
    base = MorphologyTrimapper(band=3)(mask)
    tm = TransparencyTrimapper(band=3)
    np.testing.assert_array_equal(tm(mask), base)
    out = tm(mask, None, transparent_boxes=np.array([[64, 0, 128, 96]]))
    np.testing.assert_array_equal(out[:, :64], base[:, :64])
    assert (out[:, 64:][mask[:, 64:]] == 0.5).all() and (out[:, 64:][base[:, 64:] == 0] == 0).all()
    assert tm.transparency_prompt.startswith("glass. lens.")
    assert TransparencyTrimapper(transparency_prompt="  ").transparency_prompt == ""


class _LeftHalfGrounder:
    """A grounder that reports the left half of the image it is given and records the queries."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, image: np.ndarray, text: str) -> Detections:
        self.queries.append(text)
        h, w = image.shape[:2]
        return Detections(np.array([[0, 0, w // 2, h]], np.float32), np.array([0.9], np.float32), [text])


def test_pipeline_runs_the_transparency_query() -> None:
    from layerkit.pipelines.decompose import Pipeline

    c = make_composite()
    pipe = Pipeline.from_config("classical", {"trimapper.backend": "layerkit.modules.trimapper.transparency:TransparencyTrimapper",
                                              "trimapper.band": 3})
    pipe.grounder = _LeftHalfGrounder()  # "glass" over the left half of the processed region
    res = pipe(c["image"], Prompt(boxes=[c["box"]]))
    assert pipe.grounder.queries == [pipe.trimapper.transparency_prompt]
    x0, y0, x1, y1 = res.roi  # type: ignore[misc]
    left = np.zeros(res.mask.shape, bool)
    left[y0:y1, x0:x0 + (x1 - x0) // 2] = True
    assert res.mask[left].any() and (res.trimap[left & res.mask] == 0.5).all()
    assert (res.trimap[~left & res.mask] == 1.0).any()
    assert (res.alpha[res.trimap == 1.0] > 0.99).all()
