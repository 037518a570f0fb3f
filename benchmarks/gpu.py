#!/usr/bin/env python
"""Per-stage latency and peak GPU memory of layerkit's learned stages, with random full-size nets.

No weights are downloaded (no hub is needed): every network is built here with the
architecture of the released model (SDXL / SD2, Grounding DINO, OWLv2, SAM ViT-H, ViTMatte-B,
the FBDD dual UNet with its widened ``conv_in``, the HFA nets), randomly initialised, written
with ``save_pretrained`` (or ``torch.save``) to a temporary folder and loaded back through the
layerkit stage that uses it (``DiffusersGenerator(model=DIR)``, ``HFSamSegmenter(DIR)``,
``FBDDDecomposer(model=DIR)``, ``HFARefiner(checkpoint=FILE)``, ...), so the measured call is
layerkit's own code path (dtype handling, batching, ROI tiling, numpy <-> torch glue).
Random weights time and size the computation exactly; the outputs are meaningless.

Rows whose ``path`` starts with ``raw`` time one network forward of the model layerkit
loaded (no pre/post-processing): they split a stage's time into its parts.

Per row: warm-up call(s), then the median wall time of N calls (``torch.cuda.synchronize``
around each), N chosen so a row takes about ``--row-budget`` seconds (``--runs`` fixes it);
peak memory = ``torch.cuda.max_memory_allocated`` over the row's calls (reset at the row's
start, weights on the device included); ``resident`` = memory allocated before the row.

    python benchmarks/gpu.py --device cuda --out /tmp/gpu_bench            # default stage set, ~3 min on an H100
    python benchmarks/gpu.py --device cuda --out DIR --stages fbdd,fbdd_train --steps 25 --fbdd-batch 8
    python benchmarks/gpu.py --tiny --device cpu --out /tmp/gpub            # tiny nets (as in the tests): plumbing check
    python benchmarks/gpu.py --construct-only --device cpu --out DIR        # build the full-size nets, count parameters

Writes ``DIR/gpu_bench.json`` (machine, versions, arguments, every row) and ``DIR/gpu_bench.md``
(the table, also printed). A stage that fails gives one row with the error; the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "layerkit").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

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

PROMPT = "A bird flying at sunset over the mountains"
GROUNDING_TEXT = "a bird flying"
OWL_TEXT = "a bird. a cloud"
MiB = 2.0 ** 20


# ================================================================================================ helpers
def one_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"[:300]


def n_params(*modules: Any) -> int:
    """Parameters of the ``nn.Module``s given (others ignored; shared parameters counted once)."""
    seen: set[int] = set()
    total = 0
    for m in modules:
        if isinstance(m, torch.nn.Module):
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
    return total


def pipe_modules(pipe: Any) -> list[Any]:
    """The ``nn.Module`` components of a diffusers pipeline."""
    return [v for v in pipe.components.values() if isinstance(v, torch.nn.Module)]


def dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


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


def test_image(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth RGB picture with a soft disc and its alpha (``H×W×3``, ``H×W``, float32 in [0, 1])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    bg = np.stack([0.2 + 0.3 * xx / w, 0.5 + 0.2 * np.sin(yy / 17.0), 0.3 + 0.1 * np.cos(xx / 13.0)], axis=2)
    r = min(h, w) * 0.3
    d = np.sqrt((yy - h / 2) ** 2 + (xx - w / 2) ** 2)
    alpha = np.clip((r - d) / max(2.0, r / 20) + 0.5, 0, 1).astype(np.float32)
    fg = np.stack([0.9 - 0.2 * yy / h, 0.15 + 0.1 * xx / w, 0.1 + 0 * xx], axis=2)
    img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg + rng.normal(0, 0.01, (h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32), alpha


def train_yaml(name: str) -> dict[str, Any]:
    """A training config shipped in ``layerkit/configs/train/`` (plain YAML, no interpolation used)."""
    import yaml

    from layerkit import __file__ as pkg

    return yaml.safe_load((Path(pkg).parent / "configs" / "train" / f"{name}.yaml").read_text())


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
    from transformers import (GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoImageProcessor,
                              GroundingDinoProcessor, SwinConfig)

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

    from layerkit.modules.decomposition.fbdd_nets import FBDDModel

    torch.manual_seed(0)
    with torch.device(dev):
        if tiny:
            return FBDDModel.from_scratch(AutoencoderKL(**TINY_VAE_FBDD), TINY_UNET_FBDD, "unshuffle")
        return FBDDModel.from_scratch(AutoencoderKL(**SD_VAE), SD2_UNET, "unshuffle", scheduler=SD2_SCHEDULE, null_tokens=77)


def hfa_config(tiny: bool) -> dict[str, Any]:
    """The ``model`` section of ``hfa.yaml`` (``hfa_tiny.yaml`` when tiny): the size ``layerkit train hfa`` builds."""
    return dict(train_yaml("hfa_tiny" if tiny else "hfa")["model"])


def build_hfa(tiny: bool, dev: str) -> tuple[Any, Any]:
    from layerkit.modules.refinement.hfa_nets import AlignmentNet

    m = hfa_config(tiny)
    kw = {k: m[k] for k in ("channels", "prior_levels", "prior_pool") if k in m}
    torch.manual_seed(0)
    with torch.device(dev):
        return AlignmentNet("foreground", **kw), AlignmentNet("background", **kw)


# ================================================================================================ the bench
class Bench:
    """Runs the stages, times the rows, collects the results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = args.device
        self.cuda = self.device.startswith("cuda")
        self.tiny = args.tiny
        self.rows: list[dict[str, Any]] = []
        self.t_start = time.perf_counter()
        if self.cuda:
            self.dtype = "float32" if args.dtype == "fp32" else "bfloat16"
        else:
            if args.dtype == "bf16":
                self.log("--dtype", f"{args.dtype} is not run on {self.device} "
                         "(layerkit refuses half precision on the CPU): float32")
            self.dtype = "float32"
        self.tmp_root = Path(args.tmp) if args.tmp else None

    # ------------------------------------------------------------------ plumbing
    def log(self, stage: str, msg: str) -> None:
        print(f"[gpu.py {time.perf_counter() - self.t_start:7.1f}s] {stage}: {msg}", flush=True)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def allocated(self) -> float | None:
        return torch.cuda.memory_allocated(self.device) / MiB if self.cuda else None

    @contextlib.contextmanager
    def tempdir(self, stage: str) -> Any:
        if self.tmp_root is not None:
            self.tmp_root.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix=f"layerkit_gpub_{stage}_", dir=self.tmp_root))
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)

    @property
    def build_device(self) -> str:
        return self.device if self.cuda else "cpu"

    @property
    def save_dtype(self) -> torch.dtype:
        """Weights are written in bf16 on CUDA runs (half the disk and load time); loaders cast them."""
        return torch.bfloat16 if self.cuda else torch.float32

    def timed_load(self, stage: str, what: str, fn: Callable[[], Any]) -> tuple[Any, float]:
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        dt = time.perf_counter() - t0
        self.log(stage, f"{what} in {dt:.1f} s")
        return out, dt

    def save_random(self, stage: str, what: str, build: Callable[[], tuple[Any, Any]], folder: Path) -> None:
        """Build a random ``(model, processor)`` pair, save both to ``folder``, free the build's memory."""
        def build_save() -> None:
            model, proc = build()
            model.to(self.save_dtype).save_pretrained(folder)
            proc.save_pretrained(folder)
        self.timed_load(stage, what, build_save)
        self.free()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if "error" in row:
            self.log(row["stage"], f"{row.get('setting', '')}: FAILED {row['error']}")
        elif "median_ms" in row:
            extra = f", {row['samples_per_s']:.2f} samples/s" if "samples_per_s" in row else ""
            peak = f", peak {row['peak_mib']:.0f} MiB" if row.get("peak_mib") is not None else ""
            self.log(row["stage"], f"{row['setting']}: {fmt_time(row['median_ms'])} (x{row['runs']}){extra}{peak}")

    def measure(self, fn: Callable[[], Any], min_runs: int, budget: float) -> dict[str, Any]:
        args = self.args

        def once() -> float:
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            return time.perf_counter() - t0

        resident = self.allocated()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        warm = [once()]
        n_warm = args.warmup if args.warmup is not None else (3 if warm[0] < 0.2 else 2 if warm[0] < 5.0 else 1)
        while len(warm) < max(1, n_warm):
            warm.append(once())
        runs = args.runs or max(min_runs, min(args.max_runs, math.ceil(budget / max(min(warm), 1e-4))))
        times = [once() for _ in range(runs)]
        out: dict[str, Any] = {
            "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3, "mean_ms": statistics.fmean(times) * 1e3,
            "first_ms": warm[0] * 1e3, "runs": runs, "warmup": len(warm), "resident_mib": resident}
        if self.cuda:
            out["peak_mib"] = torch.cuda.max_memory_allocated(self.device) / MiB
            out["peak_reserved_mib"] = torch.cuda.max_memory_reserved(self.device) / MiB
        else:
            out["peak_mib"] = None
        return out

    def row(self, stage: str, setting: str, fn: Callable[[], Any], *, path: str, dtype: Any, params: int | None,
            min_runs: int = 3, budget: float | None = None, items: int | None = None, **extra: Any) -> dict[str, Any]:
        """Time ``fn`` and add a row (or an error row: one failing setting does not stop the stage)."""
        row: dict[str, Any] = {"stage": stage, "setting": setting, "path": path, "dtype": dtype_name(dtype), "params": params}
        budget = self.args.row_budget if budget is None else budget
        if self.tiny:
            min_runs = min(min_runs, 2)
        self.log(stage, f"{setting} ...")
        try:
            row.update(self.measure(fn, min_runs, budget))
            if items:
                row["items_per_call"] = items
                row["samples_per_s"] = items / (row["median_ms"] / 1e3)
        except Exception as e:  # noqa: BLE001 - reported in the table
            row["error"] = one_line(e)
            if self.args.verbose:
                traceback.print_exc()
            self.free()
        row.update({k: v for k, v in extra.items() if v is not None})
        self.add(row)
        return row

    def run(self, stages: list[str], after_stage: Callable[[], None] | None = None) -> None:
        for name in stages:
            t0 = time.perf_counter()
            self.log(name, "start")
            try:
                STAGES[name](self, name)
            except Exception as e:  # noqa: BLE001 - one failing stage is a row, the others still run
                if self.args.verbose:
                    traceback.print_exc()
                self.add({"stage": name, "setting": "(stage)", "error": one_line(e)})
            finally:
                self.free()
            self.log(name, f"done in {time.perf_counter() - t0:.1f} s")
            if after_stage is not None:
                after_stage()

    # ------------------------------------------------------------------ sizes
    def res(self, full: int, tiny: int) -> int:
        return tiny if self.tiny else full


def fmt_time(ms: float) -> str:
    return f"{ms / 1e3:.2f} s" if ms >= 1000 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


# ================================================================================================ stages
def stage_generator(b: Bench, stage: str) -> None:
    """SDXL (or SD2) through ``DiffusersGenerator``: UNet step, VAE decode, 1-step and N-step calls, CPU offload."""
    from layerkit.errors import LayerkitError
    from layerkit.modules.generation.diffusers_t2i import DiffusersGenerator

    args = b.args
    res = b.res(args.resolution, 64)
    kind = args.generator
    with b.tempdir(stage) as tmp:
        def build_save() -> None:
            pipe = (build_sdxl if kind == "sdxl" else build_sd2)(b.tiny, b.build_device, tmp / "tok")
            pipe.to(dtype=b.save_dtype)
            pipe.save_pretrained(tmp / "model")
        b.timed_load(stage, f"built random {kind} and saved it", build_save)
        b.free()
        gen = DiffusersGenerator(model=str(tmp / "model"), steps=args.gen_steps, guidance_scale=5.0, dtype=b.dtype).to(b.device)
        pipe, load_s = b.timed_load(stage, "loaded through DiffusersGenerator", lambda: gen.loaded)
        dt = pipe.unet.dtype
        total = n_params(*pipe_modules(pipe))
        lk = f"layerkit: DiffusersGenerator(model=DIR) [{type(pipe).__name__}]"
        state = {"nonfinite": False}

        def call() -> None:
            try:
                gen(PROMPT, height=res, width=res, seed=0)
            except LayerkitError as e:  # random weights may overflow; the whole pipeline has run by then
                if "non-finite" not in str(e):
                    raise
                state["nonfinite"] = True

        # one denoising step of the UNet (classifier-free guidance: batch 2)
        f = pipe.vae_scale_factor
        g = torch.Generator().manual_seed(0)
        lat = torch.randn(2, 4, res // f, res // f, generator=g).to(b.device, dt)
        seq = pipe.tokenizer.model_max_length
        ehs = torch.randn(2, seq, pipe.unet.config.cross_attention_dim, generator=g).to(b.device, dt)
        kw: dict[str, Any] = {}
        if kind == "sdxl":
            kw["added_cond_kwargs"] = {
                "text_embeds": torch.randn(2, pipe.text_encoder_2.config.projection_dim, generator=g).to(b.device, dt),
                "time_ids": torch.tensor([[res, res, 0, 0, res, res]] * 2, dtype=dt, device=b.device)}
        t = torch.tensor(500, device=b.device)

        def unet_step() -> None:
            with torch.inference_mode():
                pipe.unet(lat, t, encoder_hidden_states=ehs, **kw)

        b.row(stage, f"UNet step {res}² (CFG batch 2)", unet_step, path="raw: pipe.unet forward", dtype=dt,
              params=n_params(pipe.unet), load_s=load_s)
        z = lat[:1] / pipe.vae.config.scaling_factor

        def vae_decode() -> None:
            with torch.inference_mode():
                pipe.vae.decode(z)

        b.row(stage, f"VAE decode {res}²", vae_decode, path="raw: pipe.vae.decode", dtype=pipe.vae.dtype,
              params=n_params(pipe.vae))
        gen.steps = 1
        b.row(stage, f"{res}², 1 step (text enc + 1 step + decode)", call, path=lk, dtype=dt, params=total)
        gen.steps = args.gen_steps
        r = b.row(stage, f"{res}², {args.gen_steps} steps, guidance 5", call, path=lk, dtype=dt, params=total)
        if state["nonfinite"]:
            r["note"] = "output non-finite (random weights); timed to the end of the pipeline"
        del pipe, gen, call, unet_step, vae_decode, lat, ehs, kw, z
        b.free()
        if b.cuda and not args.no_offload:
            import importlib.util

            if importlib.util.find_spec("accelerate") is None:
                b.add({"stage": stage, "setting": "cpu_offload", "error": "accelerate is not installed"})
                return
            gen = DiffusersGenerator(model=str(tmp / "model"), steps=args.gen_steps, guidance_scale=5.0, dtype=b.dtype,
                                     cpu_offload=True).to(b.device)
            pipe, load_s = b.timed_load(stage, "loaded with cpu_offload", lambda: gen.loaded)

            def call_off() -> None:
                try:
                    gen(PROMPT, height=res, width=res, seed=0)
                except LayerkitError as e:
                    if "non-finite" not in str(e):
                        raise

            b.row(stage, f"{res}², {args.gen_steps} steps, cpu_offload", call_off, path=lk + " cpu_offload=true",
                  dtype=dt, params=total, min_runs=2, load_s=load_s)
            del pipe, gen


def _detector_rows(b: Bench, stage: str, cls: Any, folder: Path, text: str, dtypes: list[str], kw: dict[str, Any]) -> None:
    from layerkit.modules.grounding.phrases import detector_forward, grounding_caption, split_queries

    h, w = (96, 128) if b.tiny else (b.args.resolution, b.args.resolution)  # tiny: the tests' size
    image, _ = test_image(h, w)
    for dt in dtypes:
        g = cls(str(folder), dtype=dt, **kw).to(b.device)
        parts, load_s = b.timed_load(stage, f"loaded through {cls.__name__} ({dt})", lambda: g.loaded)
        model, proc = parts["model"], parts["processor"]
        params = n_params(model)
        b.row(stage, f"{h}×{w} input, call (preprocess + forward + boxes)", lambda: g(image, text),
              path=f"layerkit: {cls.__name__}(DIR)", dtype=g.torch_dtype, params=params, load_s=load_s)
        query = grounding_caption(text) if cls.__name__.startswith("Grounding") else [split_queries(text)]
        _, inputs = detector_forward(proc, model, image, g.device, g.torch_dtype, query)
        side = tuple(inputs["pixel_values"].shape[-2:])

        def fwd() -> None:
            with torch.inference_mode():
                model(**inputs)

        b.row(stage, f"forward at {side[0]}×{side[1]} px", fwd, path="raw: model forward", dtype=g.torch_dtype, params=params)
        del g, parts, model, proc, inputs, fwd
        b.free()


def stage_grounding_dino(b: Bench, stage: str) -> None:
    """Grounding DINO (base by default) through ``GroundingDinoGrounder``: fp32 (the config default) and --dtype."""
    from layerkit.modules.grounding.grounding_dino import GroundingDinoGrounder

    with b.tempdir(stage) as tmp:
        name = "tiny-test" if b.tiny else b.args.gdino
        b.save_random(stage, f"built random grounding-dino-{name} and saved it",
                      lambda: build_grounding_dino(b.tiny, b.build_device, tmp / "tok", b.args.gdino), tmp / "model")
        dtypes = list(dict.fromkeys(["float32", b.dtype]))
        _detector_rows(b, stage, GroundingDinoGrounder, tmp / "model", GROUNDING_TEXT, dtypes,
                       dict(box_threshold=0.3, text_threshold=0.25))


def stage_owlv2(b: Bench, stage: str) -> None:
    """OWLv2 base/16 (960 px) through ``Owlv2Grounder``."""
    from layerkit.modules.grounding.owlv2 import Owlv2Grounder

    with b.tempdir(stage) as tmp:
        b.save_random(stage, "built random owlv2 and saved it", lambda: build_owlv2(b.tiny, b.build_device, tmp / "tok"),
                      tmp / "model")
        _detector_rows(b, stage, Owlv2Grounder, tmp / "model", OWL_TEXT, [b.dtype], dict(box_threshold=0.15))


def stage_sam_hf(b: Bench, stage: str) -> None:
    """SAM ViT-H (transformers) through ``HFSamSegmenter``: box call, image encoder, mask decoder."""
    from layerkit.modules.segmentation.sam_hf import HFSamSegmenter
    from layerkit.types import Prompt

    res = b.res(1024, 64)
    image, _ = test_image(res, res)
    box = [res * 0.25, res * 0.25, res * 0.75, res * 0.75]
    with b.tempdir(stage) as tmp:
        b.save_random(stage, "built random SAM ViT-H (transformers) and saved it",
                      lambda: build_sam_hf(b.tiny, b.build_device), tmp / "model")
        seg = HFSamSegmenter(str(tmp / "model"), dtype=b.dtype).to(b.device)
        parts, load_s = b.timed_load(stage, "loaded through HFSamSegmenter", lambda: seg.loaded)
        model, proc = parts["model"], parts["processor"]
        dt = seg.torch_dtype
        lk = "layerkit: HFSamSegmenter(DIR)"
        b.row(stage, f"{res}², box prompt (encoder + decoder + masks)", lambda: seg(image, Prompt(boxes=[box])), path=lk,
              dtype=dt, params=n_params(model), load_s=load_s)
        b.row(stage, f"{res}², 1 click, 3 masks", lambda: seg(image, Prompt(points=[[res // 2, res // 2]])), path=lk,
              dtype=dt, params=n_params(model))
        from layerkit.io.image import to_uint8

        inputs = proc(images=to_uint8(image), input_boxes=[[box]], return_tensors="pt")
        pix = inputs["pixel_values"].to(b.device, dt)
        boxes = inputs["input_boxes"].to(b.device, dt)

        def encoder() -> Any:
            with torch.inference_mode():
                return model.get_image_embeddings(pix)

        b.row(stage, f"image encoder {tuple(pix.shape[-2:])[0]}²", encoder, path="raw: SamModel.get_image_embeddings",
              dtype=dt, params=n_params(model.vision_encoder))
        emb = encoder()

        def decoder() -> None:
            with torch.inference_mode():
                model(image_embeddings=emb, input_boxes=boxes, multimask_output=False)

        b.row(stage, "prompt encoder + mask decoder (1 box)", decoder, path="raw: SamModel(image_embeddings=...)", dtype=dt,
              params=n_params(model.prompt_encoder, model.mask_decoder))
        del seg, parts, model, proc, emb, pix, boxes


def stage_sam(b: Bench, stage: str) -> None:
    """SAM ViT-H (segment_anything, always float32) through ``SamSegmenter``: a box call and its set_image part."""
    from segment_anything import sam_model_registry

    from layerkit.io.image import to_uint8
    from layerkit.modules.segmentation.sam import SamSegmenter
    from layerkit.types import Prompt

    res = b.res(1024, 64)
    image, _ = test_image(res, res)
    box = [res * 0.25, res * 0.25, res * 0.75, res * 0.75]
    model_type = "vit_tiny_bench" if b.tiny else "vit_h"
    if b.tiny:
        sam_model_registry[model_type] = build_tiny_segment_anything
    try:
        with b.tempdir(stage) as tmp:
            ckpt = tmp / "sam.pth"

            def build_save() -> None:
                torch.save({k: v.cpu() for k, v in build_segment_anything(b.tiny, b.build_device).state_dict().items()}, ckpt)
            b.timed_load(stage, "built random SAM ViT-H (segment_anything) and saved it", build_save)
            b.free()
            seg = SamSegmenter(str(ckpt), model_type=model_type).to(b.device)
            parts, load_s = b.timed_load(stage, "loaded through SamSegmenter", lambda: seg.loaded)
            params = n_params(parts["model"])
            b.row(stage, f"{res}², box prompt (set_image + predict)", lambda: seg(image, Prompt(boxes=[box])),
                  path="layerkit: SamSegmenter(checkpoint=FILE)", dtype=torch.float32, params=params, load_s=load_s)
            pred = parts["predictor"]
            img8 = to_uint8(image)

            def set_image() -> None:
                with torch.inference_mode():
                    pred.set_image(img8, image_format="RGB")

            b.row(stage, f"set_image {res}² (image encoder)", set_image, path="raw: SamPredictor.set_image",
                  dtype=torch.float32, params=n_params(parts["model"].image_encoder))
            del seg, parts, pred
    finally:
        if b.tiny:
            sam_model_registry.pop(model_type, None)


def stage_vitmatte(b: Bench, stage: str) -> None:
    """ViTMatte-B through ``VitMatteMatter``: one 1024² pass, the tiled path on a 2048² image, the raw forward."""
    from layerkit.modules.matting.vitmatte import VitMatteMatter, matte_input, tile_starts

    args = b.args
    res = b.res(args.resolution, 96)
    tile, overlap = (64, 16) if b.tiny else (args.vitmatte_tile, 128)
    with b.tempdir(stage) as tmp:
        b.save_random(stage, "built random ViTMatte-B and saved it", lambda: build_vitmatte(b.tiny, b.build_device),
                      tmp / "model")
        m = VitMatteMatter(str(tmp / "model"), tile=max(tile, res), overlap=overlap, context=64, dtype=b.dtype).to(b.device)
        parts, load_s = b.timed_load(stage, "loaded through VitMatteMatter", lambda: m.loaded)
        model, proc = parts["model"], parts["processor"]
        params, dt = n_params(model), m.torch_dtype

        def inputs(side: int) -> tuple[np.ndarray, np.ndarray]:
            img, _ = test_image(side, side)
            tri = np.full((side, side), 0.5, np.float32)  # unknown everywhere: the ROI is the whole image
            tri[: side // 8, : side // 8] = 0.0
            tri[side // 2 - side // 16: side // 2 + side // 16, side // 2 - side // 16: side // 2 + side // 16] = 1.0
            return img, tri

        img, tri = inputs(res)
        b.row(stage, f"{res}², unknown everywhere (one pass)", lambda: m(img, tri), path="layerkit: VitMatteMatter(DIR)",
              dtype=dt, params=params, load_s=load_s)
        big = 2 * res
        m.tile = tile
        n_tiles = len(tile_starts(big, tile, overlap)) ** 2
        img2, tri2 = inputs(big)
        b.row(stage, f"{big}², tiled: {n_tiles} tiles of {tile}² (overlap {overlap})", lambda: m(img2, tri2),
              path="layerkit: VitMatteMatter(DIR) tile path", dtype=dt, params=params, min_runs=2)
        x = matte_input(img, tri, proc.image_mean, proc.image_std).to(b.device, dt)

        def fwd() -> None:
            with torch.inference_mode():
                model(pixel_values=x)

        b.row(stage, f"forward {res}²", fwd, path="raw: VitMatteForImageMatting forward", dtype=dt, params=params)
        del m, parts, model, proc, x


def stage_fbdd(b: Bench, stage: str) -> None:
    """FBDD full decomposition through ``FBDDDecomposer``: batch_layers true/false, bf16 and fp32."""
    from layerkit.modules.decomposition.fbdd import FBDDDecomposer

    args = b.args
    res = b.res(args.fbdd_resolution, 64)
    steps = args.steps
    image, alpha = test_image(res, res)
    dtypes = [d for d in (args.fbdd_dtypes.split(",") if b.cuda else ["fp32"]) if d]
    with b.tempdir(stage) as tmp:
        def build_save() -> None:
            model = build_fbdd(b.tiny, b.build_device)
            model.to(b.save_dtype).save_pretrained(tmp / "fbdd")
        b.timed_load(stage, f"built random FBDD ({'tiny' if b.tiny else '2 SD2-inpainting-size UNets + SD VAE'}) and saved it",
                     build_save)
        b.free()
        for short in dtypes:
            dt = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}[short]
            dec = FBDDDecomposer(model=str(tmp / "fbdd"), scheduler=args.fbdd_scheduler, steps=steps, resolution=res,
                                 batch_layers=True, dtype=dt).to(b.device)
            model, load_s = b.timed_load(stage, f"loaded through FBDDDecomposer ({dt})", lambda: dec.loaded)
            params = n_params(model.unet_fg, model.unet_bg, model.vae)
            lk = "layerkit: FBDDDecomposer(model=DIR)"
            f = model.vae_factor
            g = torch.Generator().manual_seed(0)
            x = torch.randn(1, model.unet_fg.config.in_channels, res // f, res // f, generator=g).to(b.device, dec.torch_dtype)
            emb = model.null_embeds.to(x)
            t = torch.tensor(500, device=b.device)

            def unet() -> None:
                with torch.inference_mode():
                    model.unet_fg(x, t, encoder_hidden_states=emb)

            b.row(stage, f"one UNet forward, latent {res // f}² ({model.unet_fg.config.in_channels} ch in)", unet,
                  path="raw: unet_fg forward", dtype=dec.torch_dtype, params=n_params(model.unet_fg), load_s=load_s)
            b.row(stage, f"{res}², {args.fbdd_scheduler} {steps} steps, batch_layers=true", lambda: dec(image, alpha),
                  path=lk, dtype=dec.torch_dtype, params=params)
            dec2 = FBDDDecomposer(model=str(tmp / "fbdd"), scheduler=args.fbdd_scheduler, steps=steps, resolution=res,
                                  batch_layers=False, dtype=dt).to(b.device)
            dec2._loaded = model  # share the weights; _place keeps only the VAE on the device
            dec2._place(model, dec2.torch_dtype)
            del dec, x, emb
            b.free()
            b.row(stage, f"{res}², {args.fbdd_scheduler} {steps} steps, batch_layers=false", lambda: dec2(image, alpha),
                  path=lk, dtype=dec2.torch_dtype, params=params,
                  note="one UNet on the device at a time; host<->device copies included")
            del dec2, model
            b.free()


def stage_hfa(b: Bench, stage: str) -> None:
    """HFA refinement (FAN + BAN, hfa.yaml size) through ``HFARefiner``."""
    from layerkit.modules.refinement.hfa import HFARefiner
    from layerkit.modules.refinement.hfa_nets import save_checkpoint

    res = b.res(b.args.resolution, 64)
    image, alpha = test_image(res, res)
    rng = np.random.default_rng(1)
    fhat = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
    bhat = np.clip(image[::-1] + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
    with b.tempdir(stage) as tmp:
        fan, ban = build_hfa(b.tiny, "cpu")
        save_checkpoint(tmp / "hfa.pt", fan, ban, {"note": "random weights (benchmarks/gpu.py)"})
        ref = HFARefiner(checkpoint=str(tmp / "hfa.pt")).to(b.device)
        (fan, ban), load_s = b.timed_load(stage, "loaded through HFARefiner", ref.nets)
        params = n_params(fan, ban)
        cfg = f"channels {list(fan.channels)}"
        b.row(stage, f"{res}², FAN + BAN ({cfg})", lambda: ref(image, alpha, fhat, bhat),
              path="layerkit: HFARefiner(checkpoint=FILE)",
              dtype=torch.float32, params=params, load_s=load_s)
        c = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].to(b.device)
        a = torch.from_numpy(alpha[None, None].copy()).to(b.device)
        x = torch.from_numpy(fhat.transpose(2, 0, 1).copy())[None].to(b.device)

        def fwd() -> None:
            with torch.inference_mode():
                fan(c, a, x)

        b.row(stage, f"FAN forward {res}²", fwd, path="raw: AlignmentNet forward", dtype=torch.float32, params=n_params(fan))
        del ref, fan, ban


def _train_rows(b: Bench, stage: str, module: Any, step_loss: Callable[[], torch.Tensor], batch: int, setting: str,
                precisions: list[str], clip: float | None) -> None:
    """Time one optimiser step (forward, backward, clipping, AdamW, LR schedule, EMA) per precision."""
    module.to(b.device)
    module.train()
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    params = [p for p in module.nets.parameters() if p.requires_grad]
    dev_type = "cuda" if b.cuda else "cpu"
    ema = "EMA" if module.ema is not None else "no EMA"
    for prec in precisions:
        def step() -> None:
            with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=prec == "bf16-mixed"):
                loss = step_loss()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if module.ema is not None:
                module.ema.update_parameters(module.nets)

        b.row(stage, f"{setting}, batch {batch}, {prec}, AdamW, {ema}", step,
              path="layerkit: training module losses + AdamW step (no Lightning Trainer)",
              dtype="bfloat16-autocast" if prec == "bf16-mixed" else "float32", params=sum(p.numel() for p in params),
              items=batch)
        opt.zero_grad(set_to_none=True)
        b.free()


def stage_fbdd_train(b: Bench, stage: str) -> None:
    """One FBDD training step (FBDDModule.losses on both UNets, backward, AdamW, EMA) at 512², bf16 autocast."""
    from layerkit.training.fbdd_module import FBDDModule

    args = b.args
    cfg = train_yaml("fbdd_tiny" if b.tiny else "fbdd")
    size = b.res(int(cfg["data"]["size"]), 32)
    batch = args.fbdd_batch or (2 if b.tiny else int(cfg["data"]["batch_size"]))
    optim = dict(cfg.get("optim") or {})
    if args.no_ema:
        optim["ema_decay"] = 0.0
    model, build_s = b.timed_load(stage, "built random FBDD (fp32 master weights)", lambda: build_fbdd(b.tiny, b.build_device))
    module = FBDDModule(model, **optim)
    g = torch.Generator().manual_seed(0)
    data = {k: torch.rand(batch, c, size, size, generator=g).to(b.device)
            for k, c in (("image", 3), ("alpha", 1), ("fg", 3), ("bg", 3))}
    clip = (cfg.get("trainer") or {}).get("gradient_clip_val")
    _train_rows(b, stage, module, lambda: module.losses(data, module.nets["fbdd"])["loss"], batch, f"{size}²",
                [p.strip() for p in args.fbdd_precision.split(",") if p.strip()], clip)
    del module, model, data


def stage_hfa_train(b: Bench, stage: str) -> None:
    """One HFA training step (HFAModule.refine + losses, backward, AdamW, EMA) at hfa.yaml's size."""
    from layerkit.training.hfa_module import HFAModule

    args = b.args
    cfg = train_yaml("hfa_tiny" if b.tiny else "hfa")
    size = args.hfa_train_size or int(cfg["data"]["size"])
    batch = args.hfa_batch or int(cfg["data"]["batch_size"])
    m = dict(cfg["model"])
    for k in ("channels", "prior_levels", "prior_pool"):
        m.pop(k, None)
    optim = dict(cfg.get("optim") or {})
    if args.no_ema:
        optim["ema_decay"] = 0.0
    fan, ban = build_hfa(b.tiny, b.build_device)
    module = HFAModule(fan, ban, **m, **optim)
    g = torch.Generator().manual_seed(0)
    data = {k: torch.rand(batch, c, size, size, generator=g).to(b.device)
            for k, c in (("image", 3), ("alpha", 1), ("fg", 3), ("bg", 3), ("fg_hat", 3), ("bg_hat", 3))}

    def loss() -> torch.Tensor:
        f, bb = module.refine(data)
        return module.losses(data, f, bb)["loss"]

    precs = list(dict.fromkeys([str((cfg.get("trainer") or {}).get("precision", "32-true")), "bf16-mixed"]))
    _train_rows(b, stage, module, loss, batch, f"{size}² (channels {list(fan.channels)})", precs,
                (cfg.get("trainer") or {}).get("gradient_clip_val"))
    del module, fan, ban, data


STAGES: dict[str, Callable[[Bench, str], None]] = {
    "generator": stage_generator,
    "grounding_dino": stage_grounding_dino,
    "owlv2": stage_owlv2,
    "sam_hf": stage_sam_hf,
    "sam": stage_sam,
    "vitmatte": stage_vitmatte,
    "fbdd": stage_fbdd,
    "hfa": stage_hfa,
    "fbdd_train": stage_fbdd_train,
    "hfa_train": stage_hfa_train,
}
ALIASES: dict[str, list[str]] = {
    "grounding": ["grounding_dino", "owlv2"],
    "segmentation": ["sam_hf", "sam"],
    "train": ["fbdd_train", "hfa_train"],
    "all": list(STAGES),
}


def parse_stages(spec: str) -> list[str]:
    out: list[str] = []
    for s in (x.strip() for x in spec.split(",")):
        if not s:
            continue
        names = ALIASES.get(s, [s])
        for n in names:
            if n not in STAGES:
                raise SystemExit(f"gpu.py: unknown stage {n!r}; valid: {', '.join([*STAGES, *ALIASES])}")
            if n not in out:
                out.append(n)
    return out


# ================================================================================================ construct-only
def construct_only(args: argparse.Namespace, stages: list[str]) -> list[dict[str, Any]]:
    """Build each stage's networks (no forward), count parameters, free them: a config check."""
    rows: list[dict[str, Any]] = []
    dev = args.device
    t_start = time.perf_counter()

    def count(stage: str, what: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        try:
            obj = fn()
            mods = pipe_modules(obj) if hasattr(obj, "components") else list(obj) if isinstance(obj, tuple) else [obj]
            parts = {type(m).__name__ + (f"[{i}]" if isinstance(obj, tuple) and len(mods) > 1 else ""): n_params(m)
                     for i, m in enumerate(mods) if isinstance(m, torch.nn.Module)}
            row = {"stage": stage, "setting": what, "params": n_params(*mods), "parts": parts,
                   "build_s": time.perf_counter() - t0}
            del obj, mods
        except Exception as e:  # noqa: BLE001
            if args.verbose:
                traceback.print_exc()
            row = {"stage": stage, "setting": what, "error": one_line(e)}
        gc.collect()
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
        rows.append(row)
        msg = row.get("error") or f"{row['params'] / 1e6:.1f} M parameters {row['parts']} ({row['build_s']:.1f} s)"
        print(f"[gpu.py {time.perf_counter() - t_start:7.1f}s] {stage}: {what}: {msg}", flush=True)

    with tempfile.TemporaryDirectory(prefix="layerkit_gpub_tok_") as tok:
        tok_dir = Path(tok)
        for s in stages:
            if s == "generator":
                builder = build_sdxl if args.generator == "sdxl" else build_sd2
                count(s, f"{args.generator} pipeline", lambda: builder(args.tiny, dev, tok_dir))
            elif s == "grounding_dino":
                count(s, f"grounding-dino-{args.gdino}", lambda: build_grounding_dino(args.tiny, dev, tok_dir, args.gdino)[0])
            elif s == "owlv2":
                count(s, "owlv2-base-patch16", lambda: build_owlv2(args.tiny, dev, tok_dir)[0])
            elif s == "sam_hf":
                count(s, "SamModel ViT-H", lambda: build_sam_hf(args.tiny, dev)[0])
            elif s == "sam":
                count(s, "segment_anything vit_h", lambda: build_segment_anything(args.tiny, dev))
            elif s == "vitmatte":
                count(s, "ViTMatte-B", lambda: build_vitmatte(args.tiny, dev)[0])
            elif s in ("fbdd", "fbdd_train"):
                if not any(r["stage"] in ("fbdd", "fbdd_train") for r in rows):
                    count(s, "FBDDModel (unet_fg, unet_bg, vae)",
                          lambda: (lambda m: (m.unet_fg, m.unet_bg, m.vae))(build_fbdd(args.tiny, dev)))
            elif s in ("hfa", "hfa_train"):
                if not any(r["stage"] in ("hfa", "hfa_train") for r in rows):
                    count(s, f"FAN + BAN {hfa_config(args.tiny)['channels']}", lambda: build_hfa(args.tiny, dev))
    return rows


# ================================================================================================ report
def machine(args: argparse.Namespace) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": args.device,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark}
    for mod in ("diffusers", "transformers", "accelerate", "lightning", "segment_anything", "layerkit"):
        try:
            info[mod] = getattr(__import__(mod), "__version__", "installed")
        except Exception:  # noqa: BLE001
            info[mod] = None
    if args.device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(args.device).index or 0
        p = torch.cuda.get_device_properties(idx)
        info.update(gpu=torch.cuda.get_device_name(idx), gpu_memory_mib=p.total_memory / MiB,
                    gpu_capability=f"{p.major}.{p.minor}", bf16_supported=torch.cuda.is_bf16_supported())
    return info


def fmt_params(n: int | None) -> str:
    if n is None:
        return ""
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    head = [f"# layerkit GPU benchmark ({'tiny nets' if meta['args']['tiny'] else 'full-size random nets'})", "",
            f"{meta.get('gpu') or meta['device']} · torch {meta['torch']} · CUDA {meta['cuda_runtime']} · "
            f"diffusers {meta.get('diffusers')} · transformers {meta.get('transformers')} · "
            f"total {meta.get('total_s', 0):.0f} s",
            ""]
    if meta["args"].get("construct_only"):
        lines = ["| stage | model | params | parts | build s |", "|---|---|---:|---|---:|"]
        for r in result["rows"]:
            if "error" in r:
                lines.append(f"| {r['stage']} | {r['setting']} | FAILED: {r['error']} | | |")
            else:
                parts = ", ".join(f"{k} {fmt_params(v)}" for k, v in r["parts"].items())
                lines.append(f"| {r['stage']} | {r['setting']} | {fmt_params(r['params'])} | {parts} | {r['build_s']:.1f} |")
        return "\n".join(head + lines) + "\n"
    lines = ["| stage | setting | path | dtype | params | median time | peak MiB | notes |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r.get('setting', '')} | {r.get('path', '')} | {r.get('dtype', '')} | "
                         f"{fmt_params(r.get('params'))} | FAILED | | {r['error'].replace('|', '/')} |")
            continue
        t = fmt_time(r["median_ms"])
        if "samples_per_s" in r:
            t = f"{t}/step · {r['samples_per_s']:.2f} samples/s"
        notes = [f"×{r['runs']}"]
        if r.get("load_s") is not None:
            notes.append(f"load {r['load_s']:.1f} s")
        if r.get("note"):
            notes.append(r["note"])
        peak = f"{r['peak_mib']:.0f}" if r.get("peak_mib") is not None else "n/a"
        lines.append(f"| {r['stage']} | {r['setting']} | {r['path']} | {r['dtype']} | {fmt_params(r.get('params'))} | {t} | "
                     f"{peak} | {'; '.join(notes)} |")
    foot = ["", "median of N timed calls after warm-up (×N); peak = torch.cuda.max_memory_allocated over the row's calls, "
            "weights on the device included; load = the stage's first-use load (from_pretrained + placement). "
            "`raw` rows time one network forward of the model layerkit loaded."]
    return "\n".join(head + lines + foot) + "\n"


def _quiet() -> None:
    """No per-file progress bars from transformers / diffusers while saving and loading."""
    for mod in ("transformers", "diffusers"):
        try:
            __import__(f"{mod}.utils.logging", fromlist=["x"]).disable_progress_bar()
        except Exception:  # noqa: BLE001 - absent or older library
            pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/gpu.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda, cuda:N or cpu")
    p.add_argument("--out", default="benchmarks/results/gpu", help="folder for gpu_bench.json and gpu_bench.md")
    p.add_argument("--tiny", action="store_true", help="tiny nets (the tests' configs) and tiny inputs: a plumbing check")
    p.add_argument("--stages", default="all", help=f"comma list of {', '.join(STAGES)} or {', '.join(ALIASES)}")
    p.add_argument("--resolution", type=int, default=1024, help="generator / grounding input / ViTMatte / HFA side (px)")
    p.add_argument("--steps", type=int, default=20, help="FBDD denoising steps")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default=None, help="stage dtype (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--generator", choices=("sdxl", "sd2"), default="sdxl", help="generator architecture")
    p.add_argument("--gen-steps", type=int, default=30, help="generator denoising steps (layeringdiff.yaml: 30)")
    p.add_argument("--no-offload", action="store_true", help="skip the generator's cpu_offload row")
    p.add_argument("--gdino", choices=("base", "tiny"), default="base", help="Grounding DINO size")
    p.add_argument("--vitmatte-tile", type=int, default=1024, help="matter.tile for the tiled ViTMatte row")
    p.add_argument("--fbdd-resolution", type=int, default=512, help="FBDD working resolution")
    p.add_argument("--fbdd-scheduler", default="dpm++", help="FBDD scheduler (ddim, dpm++, euler, ddpm)")
    p.add_argument("--fbdd-dtypes", default="bf16,fp32", help="FBDD dtypes on CUDA")
    p.add_argument("--fbdd-batch", type=int, default=None, help="FBDD training batch (default: fbdd.yaml, 4)")
    p.add_argument("--fbdd-precision", default="bf16-mixed", help="FBDD training precisions (bf16-mixed, 32-true)")
    p.add_argument("--hfa-batch", type=int, default=None, help="HFA training batch (default: hfa.yaml, 8)")
    p.add_argument("--hfa-train-size", type=int, default=None, help="HFA training crop (default: hfa.yaml, 128)")
    p.add_argument("--no-ema", action="store_true", help="train steps without the EMA update")
    p.add_argument("--runs", type=int, default=None, help="timed calls per row (default: about --row-budget seconds)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls per row (default: 1-3 by call time)")
    p.add_argument("--row-budget", type=float, default=None, help="seconds of timed calls per row (default 5; tiny 0.2)")
    p.add_argument("--max-runs", type=int, default=20, help="upper bound on timed calls per row")
    p.add_argument("--tmp", default=None, help="where the random models are written (default: the system temp folder)")
    p.add_argument("--construct-only", action="store_true", help="only build the nets and count parameters (no forward)")
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failures")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the result dict also written to ``OUT/gpu_bench.json``."""
    args = build_parser().parse_args(argv)
    _quiet()
    if args.row_budget is None:
        args.row_budget = 0.2 if args.tiny else 5.0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu.py: --device cuda but torch.cuda.is_available() is False; use --device cpu (with --tiny)")
    stages = parse_stages(args.stages)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = machine(args)
    meta["args"] = vars(args)
    meta["stages"] = stages
    meta["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"[gpu.py] {meta.get('gpu') or args.device} · torch {meta['torch']} · CUDA {meta['cuda_runtime']} · "
          f"stages: {', '.join(stages)}{' · tiny' if args.tiny else ''}", flush=True)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []

    def write() -> str:  # after every stage too: a run cut short keeps what it measured
        meta["total_s"] = time.perf_counter() - t0
        result = {"meta": meta, "rows": rows}
        (out / "gpu_bench.json").write_text(json.dumps(result, indent=1, default=str))
        md = markdown(result)
        (out / "gpu_bench.md").write_text(md)
        return md

    if args.construct_only:
        rows.extend(construct_only(args, stages))
    else:
        bench = Bench(args)
        rows = bench.rows
        bench.run(stages, after_stage=write)
    md = write()
    result = {"meta": meta, "rows": rows}
    print(md, flush=True)
    print(f"[gpu.py] wrote {out / 'gpu_bench.json'} and {out / 'gpu_bench.md'} ({meta['total_s']:.0f} s)", flush=True)
    return result


if __name__ == "__main__":
    main()
