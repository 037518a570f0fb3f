"""FBDD: alpha to latent resolution, conv_in widening, the model folder round trip through the
real loader, sampling with every scheduler, and the offline weight checks. Tiny random
components only (diffusers ``get_dummy_components`` style) — plumbing, not quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from layerkit.errors import ConfigError, MissingModelError
from layerkit.modules.decomposer.fbdd import SCHEDULERS, FBDDDecomposer
from layerkit.modules.decomposer.fbdd_nets import FBDDModel, widen_conv_in
from layerkit.ops.latent import alpha_channels, alpha_condition, pad_to_multiple, resize_alpha, unshuffle_alpha

TINY_UNET = dict(block_out_channels=(4, 8), layers_per_block=1, sample_size=8, norm_num_groups=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8, attention_head_dim=2)


def tiny_vae() -> Any:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(4, 8), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)


@pytest.fixture
def model_dir(tmp_path: Path) -> str:
    torch.manual_seed(0)
    model = FBDDModel.from_scratch(tiny_vae(), TINY_UNET, "unshuffle")
    return str(model.save_pretrained(tmp_path / "fbdd"))


def test_alpha_to_latent_resolution() -> None:
    a = torch.rand(2, 1, 16, 24)
    u = unshuffle_alpha(a, 4)
    assert u.shape == (2, 16, 4, 6)
    assert torch.equal(u[:, 0], a[:, 0, ::4, ::4]) and torch.equal(u[:, 5], a[:, 0, 1::4, 1::4])
    assert torch.allclose(resize_alpha(a, 4)[:, 0], u.mean(dim=1), atol=1e-6)  # area resize = mean of the unshuffle
    assert alpha_condition(a, 4, "resize").shape == (2, 1, 4, 6)
    c = alpha_condition(a, 4, "unshuffle")
    assert c.shape == (2, 1 + 16, 4, 6) and alpha_channels(4, "unshuffle") == 17
    with pytest.raises(ValueError, match="multiple of the latent factor"):
        unshuffle_alpha(torch.rand(1, 1, 10, 16), 4)
    with pytest.raises(ValueError, match="unknown alpha layout"):
        alpha_condition(a, 4, "stretch")
    padded, size = pad_to_multiple(torch.rand(1, 3, 10, 13), 8)
    assert padded.shape[-2:] == (16, 16) and size == (10, 13)


def test_widened_conv_in_keeps_step0_behaviour() -> None:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(in_channels=9, out_channels=4, **TINY_UNET).eval()
    x, t, emb = torch.randn(1, 9, 8, 8), torch.tensor([10]), torch.randn(1, 3, 8)
    with torch.no_grad():
        before = unet(x, t, encoder_hidden_states=emb).sample
        widen_conv_in(unet, 9 + 16)
        after = unet(torch.cat([x, torch.randn(1, 16, 8, 8)], 1), t, encoder_hidden_states=emb).sample
    assert unet.config.in_channels == 25 and unet.conv_in.in_channels == 25
    assert torch.allclose(before, after, atol=1e-6)


def test_model_checks_channels() -> None:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(in_channels=9, out_channels=4, **TINY_UNET)
    with pytest.raises(ValueError, match="input channels"):
        FBDDModel(unet, unet, tiny_vae(), torch.zeros(1, 1, 8), "unshuffle")


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_sampling_through_the_real_loader(model_dir: str, scheduler: str) -> None:
    dec = FBDDDecomposer(model=model_dir, scheduler=scheduler, steps=2, resolution=0)
    assert dec.missing_weights() == []
    rng = np.random.default_rng(0)
    image, alpha = rng.random((13, 18, 3), np.float32), rng.random((13, 18), np.float32)
    f, b = dec(image, alpha)
    assert f.shape == b.shape == (13, 18, 3) and f.dtype == np.float32
    assert np.isfinite(f).all() and np.isfinite(b).all() and f.min() >= 0 and b.max() <= 1
    assert dec.loaded.alpha_layout == "unshuffle" and dec.loaded.scheduler_config["prediction_type"] == "v_prediction"


def test_batched_and_sequential_layers_agree(model_dir: str) -> None:
    rng = np.random.default_rng(1)
    image, alpha = rng.random((20, 16, 3), np.float32), rng.random((20, 16), np.float32)
    f1, b1 = FBDDDecomposer(model=model_dir, scheduler="dpm++", steps=3, resolution=24)(image, alpha)
    f2, b2 = FBDDDecomposer(model=model_dir, scheduler="dpm++", steps=3, resolution=24, batch_layers=False)(image, alpha)
    assert np.allclose(f1, f2, atol=1e-5) and np.allclose(b1, b2, atol=1e-5)


def test_resize_layout_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = FBDDModel.from_scratch(tiny_vae(), TINY_UNET, "resize").save_pretrained(tmp_path / "m")
    dec = FBDDDecomposer(model=str(path), steps=1, resolution=0)
    assert dec.loaded.unet_fg.config.in_channels == 4 + 1 + 4
    f, b = dec(np.full((8, 8, 3), 0.5, np.float32), np.zeros((8, 8), np.float32))
    assert f.shape == (8, 8, 3) and np.isfinite(b).all()


def _tiny_inpainting_folder(root: Path) -> str:
    """An SD2-inpainting-shaped folder: unet (9 channels), vae, tokenizer, text_encoder, scheduler."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root.mkdir()
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    torch.manual_seed(0)
    UNet2DConditionModel(in_channels=9, out_channels=4, **TINY_UNET).save_pretrained(root / "unet")
    tiny_vae().save_pretrained(root / "vae")
    DDIMScheduler(prediction_type="epsilon").save_pretrained(root / "scheduler")
    (root / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a</w>": 3}))
    (root / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=6,
                  pad_token="!").save_pretrained(root / "tokenizer")
    CLIPTextModel(CLIPTextConfig(vocab_size=4, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=6, bos_token_id=0, eos_token_id=1,
                                 pad_token_id=2)).save_pretrained(root / "text_encoder")
    return str(root)


def test_from_inpainting_widens_and_stores_the_null_prompt(tmp_path: Path) -> None:
    from diffusers import UNet2DConditionModel

    src = _tiny_inpainting_folder(tmp_path / "sd2")
    model = FBDDModel.from_inpainting(src, "unshuffle")
    assert model.unet_fg.config.in_channels == 9 + 4 and model.null_embeds.shape == (1, 6, 8)
    assert model.scheduler_config["prediction_type"] == "v_prediction"
    assert model.unet_fg is not model.unet_bg
    pretrained = UNet2DConditionModel.from_pretrained(src, subfolder="unet")
    w = model.unet_fg.conv_in.weight
    assert torch.equal(w[:, :9], pretrained.conv_in.weight) and not w[:, 9:].any()
    out = model.save_pretrained(tmp_path / "fbdd")  # no text encoder needed from here on
    f, b = FBDDDecomposer(model=str(out), steps=1, resolution=0)(np.full((8, 8, 3), 0.3, np.float32),
                                                                 np.ones((8, 8), np.float32))
    assert np.isfinite(f).all() and np.isfinite(b).all()


def test_missing_weights_offline(tmp_path: Path, model_dir: str) -> None:
    assert "no FBDD model set" in FBDDDecomposer().missing_weights()[0]
    assert "does not exist" in FBDDDecomposer(model=str(tmp_path / "none")).missing_weights()[0]
    (line,) = FBDDDecomposer(model="someone/fbdd-model").missing_weights()
    assert "decomposer.model" in line and "not in the local Hugging Face cache" in line
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    shutil.rmtree(broken / "unet_bg")
    (line,) = FBDDDecomposer(model=str(broken)).missing_weights()
    assert "unet_bg/config.json" in line
    with pytest.raises(MissingModelError, match="unet_bg"):
        _ = FBDDDecomposer(model=str(broken)).loaded


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="valid: ddim"):
        FBDDDecomposer(scheduler="plms")
    with pytest.raises(ConfigError, match="steps"):
        FBDDDecomposer(steps=0)


def test_pipeline_check_weights_names_the_key(tmp_path: Path) -> None:
    from layerkit.pipelines.decompose import Pipeline

    with pytest.raises(MissingModelError, match="decomposer.model"):
        Pipeline.from_config("classical", {"decomposer.backend": "fbdd", "decomposer.model": str(tmp_path / "x")})


def test_sample_grid_figure(tmp_path: Path, model_dir: str) -> None:
    from PIL import Image

    from layerkit.training.plots import fbdd_samples

    yy, xx = np.mgrid[:24, :24]
    a = np.clip((9 - np.hypot(yy - 12, xx - 12)) * 2, 0, 1)
    fg = np.dstack([np.full_like(a, 0.9), 0.2 + 0 * a, 0.1 + 0 * a, a])
    Image.fromarray((fg * 255).astype(np.uint8), "RGBA").save(tmp_path / "fg.png")
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "bg.png")
    out = fbdd_samples(model_dir, [str(tmp_path / "fg.png")], [str(tmp_path / "bg.png")] * 2, tmp_path / "grid.png",
                       size=16, steps=1)
    assert Image.open(out).size == (7 * 16, 2 * 16)  # 7 columns, one row per composite
