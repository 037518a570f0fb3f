"""Qwen-Image-Layered backend: glue maths, offline checks, and the real loader on a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.errors import ConfigError, MissingModelError
from layerkit.modules.multilayer.qwen_layered import (
    QwenLayeredDecomposer,
    bucket_size,
    frames_to_layers,
    layers_to_stack,
    solve_background,
)
from layerkit.ops.compositing import psnr


def _rgba(rng: np.random.Generator, h: int, w: int, opaque: bool = False) -> np.ndarray:
    a = np.ones((h, w, 1), np.float32) if opaque else rng.uniform(0, 1, (h, w, 1)).astype(np.float32) * (rng.uniform(0, 1, (h, w, 1)) > 0.5)
    return np.concatenate([rng.uniform(0, 1, (h, w, 3)).astype(np.float32), a], axis=2)


def test_bucket_size_follows_the_pipeline_rule():
    assert bucket_size(480, 640, 640) == (544, 736)
    assert bucket_size(1000, 1000, 1024) == (1024, 1024)
    h, w = bucket_size(300, 900, 640)
    assert h % 16 == 0 and w % 16 == 0 and w > 2 * h
    with pytest.raises(ConfigError, match="640, 1024"):
        bucket_size(64, 64, 512)


def test_frames_to_layers_drops_composite_frame_and_resizes():
    rng = np.random.default_rng(0)
    frames = np.stack([_rgba(rng, 16, 24) for _ in range(4)])
    out = frames_to_layers(frames, 3, (32, 48))  # 4 frames for 3 layers: the first is the composite
    assert len(out) == 3 and all(x.shape == (32, 48, 4) for x in out)
    np.testing.assert_allclose(out[0], frames_to_layers(frames[1:], 3, (32, 48))[0])
    same = frames_to_layers(frames[:3], 3, (16, 24))
    np.testing.assert_array_equal(same[2], frames[2])
    rgb = frames_to_layers(frames[:2, ..., :3], 2, (16, 24))
    assert np.all(rgb[1][..., 3] == 1.0)
    with pytest.raises(ValueError, match="5 frames for 3 layers"):
        frames_to_layers(np.concatenate([frames, frames[:1]]), 3, (16, 24))


def test_solve_background_makes_the_stack_recompose():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (20, 30, 3)).astype(np.float32)
    upper = [_rgba(rng, 20, 30) * np.array([1, 1, 1, 0.6], np.float32) for _ in range(2)]
    stack = layers_to_stack([_rgba(rng, 20, 30, opaque=True), *upper], image, consistent=True)
    assert stack.names == ["background", "layer_01", "layer_02"]
    assert np.all(stack[0].alpha == 1.0)
    t = (1 - upper[0][..., 3]) * (1 - upper[1][..., 3])
    comp = stack.composite()
    ok = (t >= 0.05) & np.all((stack[0].rgb > 0) & (stack[0].rgb < 1), axis=2)
    np.testing.assert_allclose(comp[ok], image[ok], atol=1e-4)
    kept = solve_background(image, [np.ones((20, 30, 4), np.float32)], np.zeros((20, 30, 3), np.float32))
    assert np.all(kept == 0.0)  # fully covered: the given background is kept


def test_transparent_bottom_layer_shows_the_input():
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
    bottom = np.zeros((8, 8, 4), np.float32)
    stack = layers_to_stack([bottom], image, consistent=False)
    np.testing.assert_allclose(stack.composite(), image, atol=1e-6)


def test_missing_weights_are_reported_not_downloaded(tmp_path):
    assert "does not exist" in QwenLayeredDecomposer(str(tmp_path / "nope")).missing_weights()[0]
    assert "model_index.json" in QwenLayeredDecomposer(str(tmp_path)).missing_weights()[0]
    hub = QwenLayeredDecomposer("layerkit-test/not-a-cached-model")
    assert "not in the local cache" in hub.missing_weights()[0]
    with pytest.raises(MissingModelError, match="multilayer"):
        hub.load()
    with pytest.raises(ConfigError, match="2..20"):
        QwenLayeredDecomposer(layers=21)


def _byte_vocab() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (GPT-2's byte → unicode table)."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = [b for b in range(256) if b not in keep]
    table = dict(zip(keep, keep)) | {b: 256 + k for k, b in enumerate(extra)}
    return [chr(table[b]) for b in range(256)]


def tiny_qwen_pipeline():
    """A QwenImageLayeredPipeline of the real classes with tiny random weights (no download)."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageLayeredPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2Tokenizer,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                "<|image_pad|>", "<|video_pad|>"]
    vocab = {c: i for i, c in enumerate(_byte_vocab())} | {s: 256 + i for i, s in enumerate(specials)}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[])
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    torch.manual_seed(0)
    z = 8  # latent channels; must differ from the 4 RGBA channels (the pipeline tells latents from images by it)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=4 * z, out_channels=z, num_layers=1, attention_head_dim=8,
                                              num_attention_heads=2, joint_attention_dim=16, axes_dims_rope=(4, 2, 2),
                                              use_additional_t_cond=True, use_layer3d_rope=True)
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=z, dim_mult=[1, 2, 4, 4], num_res_blocks=1, temperal_downsample=[False, True, True],
                                 input_channels=4, latents_mean=[0.0] * z, latents_std=[1.0] * z)
    text = {"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}, "vocab_size": len(tok)}
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                                                            "out_hidden_size": 16},
                           hidden_size=16, vocab_size=len(tok), vision_start_token_id=vocab["<|vision_start|>"],
                           vision_end_token_id=vocab["<|vision_end|>"], vision_token_id=vocab["<|vision_pad|>"],
                           image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"])
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok, video_processor=Qwen2VLVideoProcessor())
    return QwenImageLayeredPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=Qwen2_5_VLForConditionalGeneration(cfg),
                                    tokenizer=tok, processor=processor, transformer=transformer)


@pytest.mark.slow
def test_tiny_model_loads_from_folder_and_decomposes(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_layered as qil

    from layerkit.pipelines.sequential import peel_layers

    tiny_qwen_pipeline().save_pretrained(tmp_path / "tiny")
    # keep the working size tiny (the real buckets are 640/1024, far too slow for a unit test)
    monkeypatch.setattr(qil, "calculate_dimensions", lambda area, ratio: (64, 48))
    backend = QwenLayeredDecomposer(str(tmp_path / "tiny"), layers=3, steps=2, true_cfg_scale=1.0, negative_prompt=None,
                                    cfg_normalize=False, prompt="a red disc on a green field")
    assert backend.missing_weights() == []
    image = np.random.default_rng(0).uniform(0, 1, (40, 56, 3)).astype(np.float32)
    stack = backend(image)
    assert len(stack) == 3 and stack.size == (40, 56)
    assert np.all(stack[0].alpha == 1.0) and stack.names[0] == "background"
    res = peel_layers(None, image, None, backend=backend, max_layers=2)
    assert res.mode == "qwen_layered" and len(res.stack) == 2
    assert [o.status for o in res.objects] == ["layer"]
    assert np.isfinite(psnr(res.stack.composite()[..., :3], image))
