"""The learned stages on a CUDA device: same results as on the CPU (float32), half precision runs,
``device: auto`` picks the GPU, and the sequential FBDD layout keeps the UNets off the device.

Skipped where no GPU is present (CI has none); run them on a GPU machine with
``python -m pytest tests/test_cuda.py``. Tiny random models, as everywhere in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_composite

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def fbdd_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from test_fbdd import TINY_UNET, tiny_vae

    from layerkit.modules.decomposer.fbdd_nets import FBDDModel

    torch.manual_seed(0)
    model = FBDDModel.from_scratch(tiny_vae(), TINY_UNET, "unshuffle")
    return str(model.save_pretrained(tmp_path_factory.mktemp("fbdd") / "fbdd"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    from test_stages_pretrained_factories import tiny_model

    return lambda kind: tiny_model(kind, tmp_path_factory)


def test_auto_device_and_dtype_pick_the_gpu() -> None:
    from layerkit.modules.hub import resolve_device, resolve_dtype

    assert resolve_device("auto") == "cuda"
    want = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert resolve_dtype("auto", "cuda") == want
    assert resolve_dtype("auto", "cpu") == torch.float32


def test_fbdd_on_cuda_matches_the_cpu(fbdd_dir: str) -> None:
    from layerkit.modules.decomposer.fbdd import FBDDDecomposer

    rng = np.random.default_rng(0)
    image, alpha = rng.random((20, 24, 3), np.float32), rng.random((20, 24), np.float32)
    kw = dict(model=fbdd_dir, scheduler="dpm++", steps=3, resolution=32, dtype="float32")
    f_cpu, b_cpu = FBDDDecomposer(**kw)(image, alpha)
    gpu = FBDDDecomposer(**kw).to("cuda")
    f_gpu, b_gpu = gpu(image, alpha)
    assert next(gpu.loaded.unet_fg.parameters()).device.type == "cuda"
    np.testing.assert_allclose(f_gpu, f_cpu, atol=2e-3)
    np.testing.assert_allclose(b_gpu, b_cpu, atol=2e-3)


def test_fbdd_sequential_layers_keep_the_unets_on_the_cpu(fbdd_dir: str) -> None:
    from layerkit.modules.decomposer.fbdd import FBDDDecomposer

    rng = np.random.default_rng(1)
    image, alpha = rng.random((16, 16, 3), np.float32), rng.random((16, 16), np.float32)
    kw = dict(model=fbdd_dir, scheduler="ddim", steps=2, resolution=16, dtype="float32")
    batched = FBDDDecomposer(**kw).to("cuda")
    seq = FBDDDecomposer(**kw, batch_layers=False).to("cuda")
    f1, b1 = batched(image, alpha)
    f2, b2 = seq(image, alpha)
    m = seq.loaded
    assert next(m.unet_fg.parameters()).device.type == "cpu" and next(m.unet_bg.parameters()).device.type == "cpu"
    assert next(m.vae.parameters()).device.type == "cuda"
    np.testing.assert_allclose(f1, f2, atol=1e-4)
    np.testing.assert_allclose(b1, b2, atol=1e-4)


def test_fbdd_half_precision_on_cuda(fbdd_dir: str) -> None:
    from layerkit.modules.decomposer.fbdd import FBDDDecomposer

    rng = np.random.default_rng(2)
    image, alpha = rng.random((16, 16, 3), np.float32), rng.random((16, 16), np.float32)
    dec = FBDDDecomposer(model=fbdd_dir, steps=2, resolution=16).to("cuda")  # dtype auto → bf16/fp16
    f, b = dec(image, alpha)
    assert next(dec.loaded.unet_fg.parameters()).dtype in (torch.bfloat16, torch.float16)
    assert f.dtype == np.float32 and np.isfinite(f).all() and np.isfinite(b).all()
    f32, _ = FBDDDecomposer(model=fbdd_dir, steps=2, resolution=16, dtype="float32").to("cuda")(image, alpha)
    assert np.abs(f - f32).mean() < 0.05  # half precision stays close to float32


def test_hfa_refiner_on_cuda_matches_the_cpu(tmp_path: Path) -> None:
    from test_hfa import _checkpoint

    from layerkit.modules.refiner.hfa import HFARefiner

    c = make_composite(40, 56)
    path = _checkpoint(tmp_path)[0]
    args = (c["image"], c["alpha"], c["fg"] * 0.9, c["bg"] * 0.9)
    f_cpu, b_cpu = HFARefiner(checkpoint=path)(*args)
    f_gpu, b_gpu = HFARefiner(checkpoint=path).to("cuda")(*args)
    np.testing.assert_allclose(f_gpu, f_cpu, atol=1e-4)
    np.testing.assert_allclose(b_gpu, b_cpu, atol=1e-4)


def test_vitmatte_on_cuda_matches_the_cpu(tiny: Callable[[str], Path]) -> None:
    from layerkit.modules.matter.vitmatte import VitMatteMatter
    from layerkit.modules.trimapper.morphology import MorphologyTrimapper

    c = make_composite(50, 70)
    tri = MorphologyTrimapper(band=4)(c["alpha"] > 0.5)
    d = str(tiny("vitmatte"))
    a_cpu = VitMatteMatter(d, dtype="float32").to("cpu")(c["image"], tri)
    a_gpu = VitMatteMatter(d, dtype="float32").to("cuda")(c["image"], tri)
    np.testing.assert_allclose(a_gpu, a_cpu, atol=1e-3)


def test_pipeline_device_auto_moves_learned_stages(tmp_path: Path, image_file: str) -> None:
    from test_hfa import _checkpoint

    from layerkit import Pipeline, Prompt

    pipe = Pipeline.from_config("classical", {"refiner.backend": "hfa", "refiner.checkpoint": _checkpoint(tmp_path)[0],
                                              "pipeline.device": "auto"})
    assert pipe.settings.device == "cuda" and pipe.refiner.device == "cuda"
    c = make_composite()
    r = pipe(image_file, Prompt(boxes=[c["box"].tolist()]))
    assert r.foreground.shape == (96, 128, 4) and np.isfinite(r.background).all()
    assert np.abs(r.alpha - c["alpha"]).mean() < 0.05
