"""The RefLayer model: a flow-matching latent diffusion transformer that predicts one complete RGBA layer.

Parts (every one a diffusers / transformers model with its own ``save_pretrained`` folder):

* ``vae/`` — ``AutoencoderKL``, frozen: encodes the image, the prompt canvas and (in training)
  the target layer flattened over a mid-grey matte (``α·F + (1 − α)·0.5``, so the latent holds the
  silhouette); decodes the predicted layer latent, from which the straight RGB is solved back
  with the decoded alpha;
* ``alpha_decoder/`` — :class:`AlphaDecoder`, a copy of the VAE decoder's structure with one
  output channel (initialised from the VAE decoder's weights), decoding the same layer latent
  to alpha;
* ``transformer/`` — ``SD3Transformer2DModel``; input channels, in this order::

      [ noisy layer latent (c) | image latent (c) | prompt-canvas latent (c) ]

  (channel concatenation), text through joint attention (``encoder_hidden_states``) and the
  pooled text embedding (``pooled_projections``);
* ``text_encoder/`` + ``tokenizer/`` — ``CLIPTextModelWithProjection`` and its tokenizer
  (optional: without them every call uses the stored null text embedding);
* ``scheduler/`` — ``FlowMatchEulerDiscreteScheduler``; ``reflayer_config.json`` — the canvas
  settings and the null text embedding's shape; ``null_text.safetensors``.

The **prompt canvas** (:func:`draw_canvas`) is one RGB image on black: the mask in red, boxes
as green outlines, positive points as blue discs, negative points as yellow discs — all prompt
kinds at once, encoded by the frozen VAE as the paper does. Flow matching follows SD3:
``x_σ = (1 − σ)·x₀ + σ·ε``, the transformer predicts ``v = ε − x₀``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

MATTE = 0.5  # the grey a layer is flattened over for the VAE (RefLayerModel.flatten)
MODEL_FILES = ("reflayer_config.json", "null_text.safetensors", "transformer/config.json", "vae/config.json",
               "alpha_decoder/config.json", "scheduler/scheduler_config.json")
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                "diffusion_pytorch_model.safetensors.index.json")


def missing_files(folder: str | os.PathLike) -> list[str]:
    """Files a local RefLayer model folder lacks (relative paths; empty = complete)."""
    root = Path(folder).expanduser()
    missing = [f for f in MODEL_FILES if not (root / f).is_file()]
    missing += [f"{d}/{WEIGHT_NAMES[0]}" for d in ("transformer", "vae", "alpha_decoder")
                if not any((root / d / w).is_file() for w in WEIGHT_NAMES)]
    return missing


def draw_canvas(size: tuple[int, int], points: np.ndarray | None = None, labels: np.ndarray | None = None,
                boxes: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """The colour prompt canvas, ``H×W×3`` float32 in ``[0, 1]`` (black where there is no prompt).

    Args:
        size: ``(H, W)``.
        points: ``N×2`` xy pixels; ``labels`` 1 (blue disc) or 0 (yellow disc).
        boxes: ``M×4`` xyxy pixels (green outlines).
        mask: ``H×W`` in ``[0, 1]`` (red, ≥ 0.5 counts).
    """
    import cv2

    h, w = size
    canvas = np.zeros((h, w, 3), np.float32)
    if mask is not None:
        canvas[..., 0] = (np.asarray(mask) >= 0.5).astype(np.float32)
    t = max(1, round(max(h, w) / 128))
    for b in ([] if boxes is None else np.asarray(boxes).reshape(-1, 4)):
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        cv2.rectangle(canvas, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (0.0, 1.0, 0.0), t)
    if points is not None:
        lab = np.ones(len(points), np.int64) if labels is None else np.asarray(labels)
        r = max(2, round(max(h, w) / 64))
        for (x, y), lb in zip(np.asarray(points).reshape(-1, 2), lab):
            cv2.circle(canvas, (int(round(x)), int(round(y))), r, (0.0, 0.0, 1.0) if lb else (1.0, 1.0, 0.0), -1)
    return canvas


def fit_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad (or cut) the last dimension to ``width`` (a CLIP embedding into SD3's wider slots)."""
    d = x.shape[-1]
    if d >= width:
        return x[..., :width]
    return torch.cat([x, x.new_zeros(*x.shape[:-1], width - d)], dim=-1)


class AlphaDecoder(ModelMixin, ConfigMixin):
    """The VAE decoder's structure with one output channel: scaled layer latent → alpha in ``[0, 1]``.

    Args:
        latent_channels: VAE latent channels.
        block_out_channels: the VAE's ``block_out_channels``.
        layers_per_block: the VAE's ``layers_per_block``.
        norm_num_groups: the VAE's ``norm_num_groups``.
        up_block_types: the VAE's ``up_block_types``.
        act_fn: the VAE's activation.
        scaling_factor: the VAE's latent scaling factor (latents arrive scaled).
    """

    @register_to_config
    def __init__(self, latent_channels: int = 4, block_out_channels: Sequence[int] = (64,), layers_per_block: int = 1,
                 norm_num_groups: int = 32, up_block_types: Sequence[str] = ("UpDecoderBlock2D",), act_fn: str = "silu",
                 scaling_factor: float = 0.18215) -> None:
        super().__init__()
        from diffusers.models.autoencoders.vae import Decoder

        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.decoder = Decoder(in_channels=latent_channels, out_channels=1, up_block_types=tuple(up_block_types),
                               block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                               norm_num_groups=norm_num_groups, act_fn=act_fn)

    @classmethod
    def from_vae(cls, vae: nn.Module) -> AlphaDecoder:
        """Same structure as ``vae``'s decoder; all weights copied but the last conv's (its mean over RGB)."""
        c = vae.config
        dec = cls(int(c.latent_channels), list(c.block_out_channels), int(c.layers_per_block), int(c.norm_num_groups),
                  list(c.up_block_types), str(c.act_fn), float(c.scaling_factor))
        state = {k: v for k, v in vae.decoder.state_dict().items() if not k.startswith("conv_out")}
        dec.decoder.load_state_dict(state, strict=False)
        with torch.no_grad():
            dec.decoder.conv_out.weight.copy_(vae.decoder.conv_out.weight.mean(0, keepdim=True))
            dec.decoder.conv_out.bias.copy_(vae.decoder.conv_out.bias.mean().reshape(1))
            if getattr(vae, "post_quant_conv", None) is not None:
                dec.post_quant_conv.load_state_dict(vae.post_quant_conv.state_dict())
        return dec

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """``B×c×h×w`` scaled latent → ``B×1×H×W`` alpha in ``[0, 1]``."""
        x = self.decoder(self.post_quant_conv(latents / self.config.scaling_factor))
        return ((x.float() + 1) / 2).clamp(0, 1)


class RefLayerModel(nn.Module):
    """Transformer, frozen VAE, alpha decoder, optional text encoder (see the module docstring).

    Args:
        transformer: ``SD3Transformer2DModel`` with ``3·c`` input and ``c`` output channels.
        vae: ``AutoencoderKL`` (frozen).
        alpha_decoder: :class:`AlphaDecoder` matching the VAE.
        scheduler_config: ``FlowMatchEulerDiscreteScheduler`` config.
        null_text: ``1×L×D`` text embedding and ``1×P`` pooled embedding used without text.
        text_encoder: optional ``CLIPTextModelWithProjection`` (frozen).
        tokenizer: its tokenizer (needed with ``text_encoder``).
        matte: the grey the layer is flattened over before the VAE sees it (``None``: the colour
            as given — models exported as ``layerkit.reflayer/1``).
    """

    def __init__(self, transformer: nn.Module, vae: nn.Module, alpha_decoder: AlphaDecoder, scheduler_config: dict[str, Any],
                 null_text: tuple[torch.Tensor, torch.Tensor], text_encoder: nn.Module | None = None,
                 tokenizer: Any = None, matte: float | None = MATTE) -> None:
        super().__init__()
        if matte is not None and not 0.0 <= float(matte) <= 1.0:
            raise ValueError(f"the RefLayer matte grey must be in [0, 1], got {matte}")
        self.matte = None if matte is None else float(matte)
        self.transformer, self.vae, self.alpha_decoder = transformer, vae, alpha_decoder
        self.vae.requires_grad_(False).eval()
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        if text_encoder is not None:
            text_encoder.requires_grad_(False).eval()
        self.register_buffer("null_embeds", null_text[0].detach().float().reshape(1, *null_text[0].shape[-2:]))
        self.register_buffer("null_pooled", null_text[1].detach().float().reshape(1, -1))
        self.scheduler_config = dict(scheduler_config)
        c = self.latent_channels
        if transformer.config.in_channels != 3 * c or transformer.config.out_channels != c:
            raise ValueError(f"the transformer takes {transformer.config.in_channels} → {transformer.config.out_channels} "
                             f"channels but this VAE needs {3 * c} → {c} (noisy layer | image | canvas latents)")

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (VAE factor × transformer patch size)."""
        return self.vae_factor * int(self.transformer.config.patch_size)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` in ``[0, 1]`` → scaled latent (the posterior's mode)."""
        z = self.vae.encode(image.to(self.vae.dtype) * 2 - 1).latent_dist.mode()
        return z * self.vae.config.scaling_factor

    def flatten(self, rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The layer as the VAE sees it: straight ``rgb`` over the matte grey, ``α·rgb + (1 − α)·matte``.

        The silhouette must be in the latent for the alpha decoder to read it back: a colour
        extended beyond the alpha (as training targets store it) carries no trace of the alpha."""
        if self.matte is None:
            return rgb
        return alpha * rgb + (1 - alpha) * self.matte

    def decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled layer latent → ``(straight RGB B×3×H×W, alpha B×1×H×W)`` in ``[0, 1]``.

        The VAE decodes the layer over the matte grey; the straight colour is solved back from it
        with the decoded alpha (where alpha < 0.05 the flattened colour is returned as it is)."""
        rgb = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        rgb = ((rgb.float() + 1) / 2).clamp(0, 1)
        alpha = self.alpha_decoder(latents.to(self.alpha_decoder.dtype))
        if self.matte is not None:
            a = alpha.float()
            straight = (self.matte + (rgb - self.matte) / a.clamp_min(0.05)).clamp(0, 1)
            rgb = torch.where(a >= 0.05, straight, rgb)
        return rgb, alpha

    def encode_text(self, texts: Sequence[str | None], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B×L×D, B×P)`` text embeddings; ``None`` / empty entries (or no text encoder) get the null embedding."""
        n = len(texts)
        emb = self.null_embeds.expand(n, -1, -1).clone().to(device)
        pooled = self.null_pooled.expand(n, -1).clone().to(device)
        idx = [i for i, t in enumerate(texts) if t]
        if self.text_encoder is None or not idx:
            return emb, pooled
        tok = self.tokenizer([texts[i] for i in idx], padding="max_length", max_length=emb.shape[1], truncation=True,
                             return_tensors="pt")
        with torch.no_grad():
            out = self.text_encoder(tok.input_ids.to(device))
        emb[idx] = fit_width(out.last_hidden_state, emb.shape[-1]).to(emb)
        pooled[idx] = fit_width(out.text_embeds, pooled.shape[-1]).to(pooled)
        return emb, pooled

    def predict(self, noisy: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
                text: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Velocity ``ε − x₀`` for a noisy layer latent at noise levels ``sigma`` (``B``, in ``[0, 1]``)."""
        x = torch.cat([noisy, cond.to(noisy.dtype)], dim=1).to(self.transformer.dtype)
        t = (sigma * 1000.0).to(x.dtype).reshape(-1)
        return self.transformer(hidden_states=x, encoder_hidden_states=text[0].to(x.dtype),
                                pooled_projections=text[1].to(x.dtype), timestep=t).sample

    # ------------------------------------------------------------------ building and loading
    @classmethod
    def from_scratch(cls, vae: nn.Module, transformer: dict[str, Any], text_encoder: nn.Module | None = None,
                     tokenizer: Any = None, text_tokens: int = 8) -> RefLayerModel:
        """A random transformer (``transformer`` = its arguments) around a given VAE and optional text encoder."""
        from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

        c = int(vae.config.latent_channels)
        net = SD3Transformer2DModel(**{**transformer, "in_channels": 3 * c, "out_channels": c})
        d, p = int(net.config.joint_attention_dim), int(net.config.pooled_projection_dim)
        null = (torch.zeros(1, text_tokens, d), torch.zeros(1, p))
        if text_encoder is not None and tokenizer is not None:
            ids = tokenizer([""], padding="max_length", max_length=text_tokens, truncation=True, return_tensors="pt").input_ids
            with torch.no_grad():
                out = text_encoder(ids)
            null = (out.last_hidden_state.float(), out.text_embeds.float())
        return cls(net, vae, AlphaDecoder.from_vae(vae), dict(FlowMatchEulerDiscreteScheduler(shift=1.0).config), null,
                   text_encoder, tokenizer)

    @classmethod
    def from_sd3(cls, name: str, vae: nn.Module | None = None, text_tokens: int = 77) -> RefLayerModel:
        """Start from a Stable Diffusion 3 checkpoint folder (``transformer/``, ``vae/``, ``text_encoder/``,
        ``tokenizer/``, ``scheduler/``): ``pos_embed.proj`` is widened to take the image and canvas
        latents (new input channels get zero weights, so step 0 computes what SD3 does)."""
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        from layerkit.modules.hub import pretrained_source

        src, kw = pretrained_source(name, "model.pretrained", marker="model_index.json")
        net = SD3Transformer2DModel.from_pretrained(src, subfolder="transformer", **kw)
        vae = vae if vae is not None else AutoencoderKL.from_pretrained(src, subfolder="vae", **kw)
        c = int(vae.config.latent_channels)
        old = net.pos_embed.proj
        new = nn.Conv2d(3 * c, old.out_channels, old.kernel_size, old.stride).to(old.weight)
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:, :old.in_channels] = old.weight
            new.bias.copy_(old.bias)
        net.pos_embed.proj = new
        net.register_to_config(in_channels=3 * c)
        tok = CLIPTokenizer.from_pretrained(src, subfolder="tokenizer", **kw)
        enc = CLIPTextModelWithProjection.from_pretrained(src, subfolder="text_encoder", **kw)
        sched = FlowMatchEulerDiscreteScheduler.from_pretrained(src, subfolder="scheduler", **kw)
        ids = tok([""], padding="max_length", max_length=text_tokens, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            out = enc(ids)
        # SD3's joint attention expects 4096-d (T5-sized) context: CLIP states are zero-padded to it
        null = (fit_width(out.last_hidden_state.float(), int(net.config.joint_attention_dim)),
                fit_width(out.text_embeds.float(), int(net.config.pooled_projection_dim)))
        return cls(net, vae, AlphaDecoder.from_vae(vae), dict(sched.config), null, enc, tok)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the model folder (module docstring); returns it."""
        from diffusers import FlowMatchEulerDiscreteScheduler
        from safetensors.torch import save_file

        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        self.transformer.save_pretrained(root / "transformer")
        self.vae.save_pretrained(root / "vae")
        self.alpha_decoder.save_pretrained(root / "alpha_decoder")
        FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config).save_pretrained(root / "scheduler")
        if self.text_encoder is not None and self.tokenizer is not None:
            self.text_encoder.save_pretrained(root / "text_encoder")
            self.tokenizer.save_pretrained(root / "tokenizer")
        save_file({"embeds": self.null_embeds.cpu().contiguous(), "pooled": self.null_pooled.cpu().contiguous()},
                  str(root / "null_text.safetensors"))
        (root / "reflayer_config.json").write_text(json.dumps({"format": "layerkit.reflayer/2", "matte": self.matte,
                                                               "text_encoder": self.text_encoder is not None}))
        return root

    @classmethod
    def from_pretrained(cls, name: str, torch_dtype: torch.dtype | None = None, local_files_only: bool = True) -> RefLayerModel:
        """Load a folder written by :meth:`save_pretrained` (or a hub id with that layout).

        Raises:
            MissingModelError: a local folder lacks files (they are listed).
        """
        from diffusers import AutoencoderKL, SD3Transformer2DModel
        from safetensors.torch import load_file

        from layerkit.errors import MissingModelError

        root = Path(name).expanduser()
        if root.is_dir():
            missing = missing_files(root)
            if missing:
                raise MissingModelError(f"RefLayer model folder {name!r} is incomplete: missing {', '.join(missing)}")
            src = str(root)

            def fetch(rel: str) -> str:
                return str(root / rel)
        else:
            from huggingface_hub import hf_hub_download

            src = name

            def fetch(rel: str) -> str:
                return hf_hub_download(name, rel, local_files_only=local_files_only)
        kw: dict[str, Any] = {"local_files_only": local_files_only}
        if torch_dtype is not None:
            kw["torch_dtype"] = torch_dtype
        cfg = json.loads(Path(fetch("reflayer_config.json")).read_text())
        sched = json.loads(Path(fetch("scheduler/scheduler_config.json")).read_text())
        null = load_file(fetch("null_text.safetensors"))
        net = SD3Transformer2DModel.from_pretrained(src, subfolder="transformer", **kw)
        vae = AutoencoderKL.from_pretrained(src, subfolder="vae", **kw)
        alpha = AlphaDecoder.from_pretrained(src, subfolder="alpha_decoder", **kw)
        enc = tok = None
        if cfg.get("text_encoder"):
            from transformers import CLIPTextModelWithProjection, CLIPTokenizer

            enc = CLIPTextModelWithProjection.from_pretrained(src, subfolder="text_encoder", **kw)
            tok = CLIPTokenizer.from_pretrained(src, subfolder="tokenizer", local_files_only=local_files_only)
        matte = cfg.get("matte") if cfg.get("format") != "layerkit.reflayer/1" else None  # /1: colour as given
        return cls(net, vae, alpha, sched, (null["embeds"], null["pooled"]), enc, tok, matte=matte)

    def copy(self) -> RefLayerModel:
        return copy.deepcopy(self)
