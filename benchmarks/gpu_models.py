"""The random networks of ``benchmarks/gpu.py``: full-size architectures and their builders.

Each ``build_*`` returns the randomly initialised model(s) of one layerkit stage with the
released model's architecture (``tiny=True``: the tests' tiny configs), built on ``dev`` (on
CUDA the random initialisation runs on the GPU: seconds instead of minutes for SDXL).
Tokenizers are made offline with the real id layouts, so prompts cost what they cost with the
real vocabularies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]

# ================================================================================================ configs
# Full-size architectures (the released models' config.json values).

#: SD2 / SD2-inpainting UNet (865 M parameters); FBDD widens conv_in to 4 + 4 + 1 + 64 channels.
SD2_UNET: dict[str, Any] = dict(
    sample_size=64, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, norm_num_groups=32,
    act_fn="silu", flip_sin_to_cos=True, freq_shift=0)
#: Stable Diffusion VAE (SD 1.x/2.x; SDXL's has the same layout), 83.7 M parameters, factor 8.
SD_VAE: dict[str, Any] = dict(
    block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=768, scaling_factor=0.18215)
#: SD2's DDPM training schedule (FBDD's noise schedule; prediction type v is set by FBDDModel).
SD2_SCHEDULE: dict[str, Any] = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                    num_train_timesteps=1000, steps_offset=1, clip_sample=False)
#: SDXL base UNet (2.57 B parameters).
SDXL_UNET: dict[str, Any] = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    norm_num_groups=32)
SDXL_VAE: dict[str, Any] = {**SD_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
#: CLIP ViT-L/14 text encoder (SDXL's first, SD 1.x's), OpenCLIP bigG (SDXL's second), OpenCLIP ViT-H (SD2's).
CLIP_L: dict[str, Any] = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                              max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu")
CLIP_BIGG: dict[str, Any] = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                                 max_position_embeddings=77, projection_dim=1280, hidden_act="gelu")
CLIP_H: dict[str, Any] = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
                              max_position_embeddings=77, projection_dim=512, hidden_act="gelu")
#: Swin backbones of Grounding DINO (base: Swin-B 384, tiny: Swin-T 224); text: BERT-base.
GDINO_SWIN: dict[str, dict[str, Any]] = {
    "base": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12, image_size=384),
    "tiny": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7, image_size=224),
}
#: SAM ViT-H image encoder (the prompt encoder and mask decoder are SamConfig's defaults).
SAM_VIT_H: dict[str, Any] = dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16,
                                 global_attn_indexes=[7, 15, 23, 31], mlp_dim=5120, output_channels=256, image_size=1024,
                                 patch_size=16, window_size=14)
#: ViTMatte-B (hustvl/vitmatte-base-composition-1k): VitDet-B backbone.
VITDET_B: dict[str, Any] = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4, image_size=512,
                                pretrain_image_size=224, patch_size=16, num_channels=4, out_features=["stage12"],
                                window_block_indices=[0, 1, 3, 4, 6, 7, 9, 10], residual_block_indices=[2, 5, 8, 11],
                                window_size=14, use_relative_position_embeddings=True)

# Tiny configs: the ones of tests/test_stages_pretrained_factories.py, tests/test_fbdd.py, hfa_tiny.yaml.
TINY_UNET_FBDD: dict[str, Any] = dict(
    block_out_channels=(4, 8), layers_per_block=1, sample_size=8, norm_num_groups=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=8, attention_head_dim=2)
TINY_VAE_FBDD: dict[str, Any] = dict(block_out_channels=(4, 8), in_channels=3, out_channels=3, latent_channels=4,
                                     norm_num_groups=2, down_block_types=("DownEncoderBlock2D",) * 2,
                                     up_block_types=("UpDecoderBlock2D",) * 2)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte → printable character table (the first 256 entries of CLIP's vocabulary)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_tokenizer(folder: Path, max_length: int) -> Any:
    """A ``CLIPTokenizer`` with CLIP's id layout (49408 ids, bytes first, BOS 49406, EOS 49407).

    The real BPE merges are not available offline, so words are split into single-byte tokens;
    the pipelines pad every prompt to ``max_length`` tokens, so the cost is that of the real one.
    """
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    tokens += [f"<|fill{i}|>" for i in range(49406 - len(tokens))] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)


def bert_tokenizer(folder: Path) -> Any:
    """A ``BertTokenizer`` with bert-base-uncased's id layout (30522 ids, [CLS] 101, [SEP] 102, "." 1012).

    Grounding DINO reads those ids to split the caption into phrases; the words of the benchmark
    captions are in the vocabulary, the rest are placeholders.
    """
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = [f"[unused{i}]" for i in range(30522)]
    vocab[0], vocab[100], vocab[101], vocab[102], vocab[103] = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    vocab[1010], vocab[1012], vocab[1029] = ",", ".", "?"
    words = ("a the bird flying at sunset over mountains cloud glass lens crystal water white horse red disc person dog "
             "cat sky tree").split()
    for i, w in enumerate(words):
        vocab[2000 + i] = w
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizer(str(folder / "vocab.txt"))


# ================================================================================================ builders
# Each builder returns the random model(s) of one stage, built on ``dev`` (on CUDA the random
# initialisation runs on the GPU: seconds instead of minutes for SDXL).

def _clip_text(tiny: bool, tok_dir: Path) -> tuple[Any, dict[str, int]]:
    """CLIP tokenizer (77 tokens, 16 tiny) and the token ids a ``CLIPTextConfig`` needs."""
    tok = clip_tokenizer(tok_dir / "clip", 16 if tiny else 77)
    return tok, dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
                     vocab_size=len(tok))


def build_sdxl(tiny: bool, dev: str, tok_dir: Path) -> Any:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tok, ids = _clip_text(tiny, tok_dir)
    torch.manual_seed(0)
    with torch.device(dev):
        if tiny:
            unet = UNet2DConditionModel(
                block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
                addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 16,
                cross_attention_dim=32, norm_num_groups=4)
            vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
                                down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                                sample_size=32)
            t1 = t2 = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                           max_position_embeddings=16, projection_dim=16, hidden_act="gelu")
        else:
            unet, vae, t1, t2 = UNet2DConditionModel(**SDXL_UNET), AutoencoderKL(**SDXL_VAE), CLIP_L, CLIP_BIGG
        te1 = CLIPTextModel(CLIPTextConfig(**t1, **ids))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**t2, **ids))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading")
    return StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
                                     unet=unet, scheduler=scheduler)


def build_sd2(tiny: bool, dev: str, tok_dir: Path) -> Any:
    """Stable Diffusion 2.x text-to-image (768-v: OpenCLIP ViT-H text encoder, v-prediction)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok, ids = _clip_text(tiny, tok_dir)
    torch.manual_seed(0)
    with torch.device(dev):
        if tiny:
            unet = UNet2DConditionModel(in_channels=4, out_channels=4, **{**TINY_UNET_FBDD, "cross_attention_dim": 16})
            vae = AutoencoderKL(**TINY_VAE_FBDD)
            te = CLIPTextModel(CLIPTextConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                                              max_position_embeddings=16, projection_dim=16, **ids))
        else:
            unet = UNet2DConditionModel(in_channels=4, out_channels=4, **{**SD2_UNET, "sample_size": 96})
            vae = AutoencoderKL(**SD_VAE)
            te = CLIPTextModel(CLIPTextConfig(**CLIP_H, **ids))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                              clip_sample=False, set_alpha_to_one=False, prediction_type="v_prediction")
    return StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def build_grounding_dino(tiny: bool, dev: str, tok_dir: Path, size: str = "base") -> tuple[Any, Any]:
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tok = bert_tokenizer(tok_dir / "bert")
    out = dict(out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4])
    torch.manual_seed(0)
    if tiny:
        swin = SwinConfig(window_size=7, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], image_size=64, **out)
        text = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 16, "max_position_embeddings": 64, "vocab_size": len(tok)}
        cfg = GroundingDinoConfig(d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
                                  encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10, encoder_n_points=1,
                                  decoder_n_points=1, backbone_config=swin, max_text_len=32, text_config=text)
        proc = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    else:
        swin = SwinConfig(**GDINO_SWIN[size], **out)
        cfg = GroundingDinoConfig(backbone_config=swin)  # d_model 256, 6+6 layers, 900 queries, BERT-base text
        proc = GroundingDinoImageProcessor()  # shortest edge 800, longest 1333
    with torch.device(dev):
        model = GroundingDinoForObjectDetection(cfg)
    return model, GroundingDinoProcessor(proc, tok)


def build_owlv2(tiny: bool, dev: str, tok_dir: Path) -> tuple[Any, Any]:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tok = clip_tokenizer(tok_dir / "clip16", 16)
    torch.manual_seed(0)
    if tiny:
        cfg = Owlv2Config(
            text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "max_position_embeddings": 16},
            vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                           "num_hidden_layers": 2, "num_attention_heads": 4},
            projection_dim=32)
        proc = Owlv2ImageProcessor(size={"height": 32, "width": 32})
    else:  # owlv2-base-patch16-ensemble: ViT-B/16 at 960 px, CLIP text 512 wide
        cfg = Owlv2Config(text_config={"vocab_size": len(tok)}, vision_config={"image_size": 960, "patch_size": 16})
        proc = Owlv2ImageProcessor(size={"height": 960, "width": 960})
    with torch.device(dev):
        model = Owlv2ForObjectDetection(cfg)
    return model, Owlv2Processor(image_processor=proc, tokenizer=tok)


def build_sam_hf(tiny: bool, dev: str) -> tuple[Any, Any]:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    torch.manual_seed(0)
    if tiny:
        factories = _test_model_factories()
        cfg = SamConfig(**factories.TINY_SAM_HF)
        proc = SamImageProcessor(**factories.TINY_SAM_HF_PROCESSOR)
    else:
        cfg = SamConfig(vision_config=SAM_VIT_H)
        proc = SamImageProcessor()  # longest edge 1024, padded to 1024²
    with torch.device(dev):
        model = SamModel(cfg)
    return model, SamProcessor(proc)


def _test_model_factories() -> Any:
    """``tests/test_stages_pretrained_factories.py``: the tests' tiny model definitions, which
    ``--tiny`` reuses (one definition for the tests and this script)."""
    import importlib.util

    path = ROOT / "tests" / "test_stages_pretrained_factories.py"
    spec = importlib.util.spec_from_file_location("layerkit_test_factories", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def build_tiny_segment_anything(checkpoint: str | None = None) -> Any:
    """The tiny ``segment_anything`` ``Sam`` of the tests (a ``sam_model_registry`` builder)."""
    return _test_model_factories().build_tiny_sam(checkpoint)


def build_segment_anything(tiny: bool, dev: str) -> Any:
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    with torch.device(dev):
        return build_tiny_segment_anything() if tiny else sam_model_registry["vit_h"](checkpoint=None)


def build_vitmatte(tiny: bool, dev: str) -> tuple[Any, Any]:
    from transformers import VitDetConfig, VitMatteConfig, VitMatteForImageMatting, VitMatteImageProcessor

    torch.manual_seed(0)
    if tiny:
        backbone = VitDetConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=32,
                                pretrain_image_size=32, patch_size=16, num_channels=4, out_features=["stage2"],
                                window_block_indices=[0], window_size=2, use_relative_position_embeddings=True)
        cfg = VitMatteConfig(backbone_config=backbone, hidden_size=16, convstream_hidden_sizes=[4, 8, 16],
                             fusion_hidden_sizes=[16, 8, 8, 4])
    else:
        cfg = VitMatteConfig(backbone_config=VitDetConfig(**VITDET_B), hidden_size=768,
                             convstream_hidden_sizes=[48, 96, 192], fusion_hidden_sizes=[256, 128, 64, 32])
    with torch.device(dev):
        model = VitMatteForImageMatting(cfg)
    return model, VitMatteImageProcessor()


def build_fbdd(tiny: bool, dev: str) -> Any:
    """FBDD with SD2-inpainting-sized UNets (conv_in widened for the unshuffled alpha) and the SD VAE."""
    from diffusers import AutoencoderKL

    from layerkit.modules.decomposer.fbdd_nets import FBDDModel

    torch.manual_seed(0)
    with torch.device(dev):
        if tiny:
            return FBDDModel.from_scratch(AutoencoderKL(**TINY_VAE_FBDD), TINY_UNET_FBDD, "unshuffle")
        return FBDDModel.from_scratch(AutoencoderKL(**SD_VAE), SD2_UNET, "unshuffle", scheduler=SD2_SCHEDULE, null_tokens=77)


def hfa_config(tiny: bool) -> dict[str, Any]:
    """The ``model`` section of ``hfa.yaml`` (``hfa_tiny.yaml`` when tiny): the size ``layerkit train hfa`` builds."""
    from layerkit.training.config import load_train_config

    return dict(load_train_config("hfa_tiny" if tiny else "hfa")["model"])


def build_hfa(tiny: bool, dev: str) -> tuple[Any, Any]:
    from layerkit.modules.refiner.hfa_nets import AlignmentNet

    m = hfa_config(tiny)
    kw = {k: m[k] for k in ("channels", "prior_levels", "prior_pool") if k in m}
    torch.manual_seed(0)
    with torch.device(dev):
        return AlignmentNet("foreground", **kw), AlignmentNet("background", **kw)
