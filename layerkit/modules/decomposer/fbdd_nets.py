"""The FBDD model (LayeringDiff §3.3): two latent-diffusion UNets — one denoises the foreground
layer's latent, one the background's — conditioned on the composite's VAE latent and the
alpha matte, with a frozen VAE and a stored null-prompt embedding (no text encoder needed).

UNet input, channel order (``h×w`` = latent size, ``f`` = VAE factor)::

    [ noisy latent (4) | alpha resized (1) | composite latent (4) | alpha unshuffled (f², "unshuffle" only) ]

The first 9 channels are Stable Diffusion 2 inpainting's layout (latent, mask, masked-image
latent), so :meth:`FBDDModel.from_inpainting` keeps the pretrained ``conv_in`` for them and adds
zero-initialised weights for the unshuffled alpha: at step 0 the widened UNet computes exactly
what the pretrained one does. Both UNets predict ``v`` (v-prediction).

Model folder (``save_pretrained`` / ``from_pretrained``; a local folder or a hub id)::

    fbdd_config.json  {"alpha_layout": ...}
    null_prompt.safetensors  {"embeds": 1×L×D}
    unet_fg/  unet_bg/  vae/  scheduler/      diffusers formats
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from layerkit.ops.latent import alpha_channels, alpha_condition

#: files a complete FBDD model folder holds (one weight format per model is enough)
MODEL_FILES = ("fbdd_config.json", "null_prompt.safetensors", "unet_fg/config.json", "unet_bg/config.json",
               "vae/config.json", "scheduler/scheduler_config.json")
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                "diffusion_pytorch_model.safetensors.index.json")


def missing_files(folder: str | os.PathLike, files: tuple[str, ...] = MODEL_FILES,
                  weight_dirs: tuple[str, ...] = ("unet_fg", "unet_bg", "vae")) -> list[str]:
    """Files a local FBDD model folder lacks (relative paths; empty = complete).

    Args:
        folder: the model folder.
        files: required files.
        weight_dirs: subfolders that need one weight file (any of :data:`WEIGHT_NAMES`).
    """
    root = Path(folder).expanduser()
    missing = [f for f in files if not (root / f).is_file()]
    missing += [f"{d}/{WEIGHT_NAMES[0]}" for d in weight_dirs if not any((root / d / w).is_file() for w in WEIGHT_NAMES)]
    return missing


def widen_conv_in(unet: nn.Module, in_channels: int) -> nn.Module:
    """Give ``unet.conv_in`` more input channels; the new ones get zero weights (in place).

    Args:
        unet: a diffusers ``UNet2DConditionModel``.
        in_channels: new input channel count (>= the current one).

    Returns:
        The same UNet, its config's ``in_channels`` updated.
    """
    old = unet.conv_in
    if in_channels < old.in_channels:
        raise ValueError(f"cannot narrow conv_in from {old.in_channels} to {in_channels} channels")
    if in_channels == old.in_channels:
        return unet
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding).to(old.weight)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


def encode_null_prompt(tokenizer: Any, text_encoder: nn.Module) -> torch.Tensor:
    """The text encoder's embedding of the empty prompt, ``1×L×D`` (computed once, then stored)."""
    ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        return text_encoder(ids.to(text_encoder.device))[0].float().cpu()


class FBDDModel(nn.Module):
    """Foreground UNet, background UNet, frozen VAE, null-prompt embedding.

    Args:
        unet_fg: ``UNet2DConditionModel`` for the foreground latent.
        unet_bg: ``UNet2DConditionModel`` for the background latent.
        vae: ``AutoencoderKL`` (frozen).
        null_embeds: ``1×L×D`` prompt embedding used for every call.
        alpha_layout: ``"unshuffle"`` or ``"resize"`` (see :mod:`layerkit.ops.latent`).
        scheduler_config: diffusers scheduler config of the training noise schedule.
    """

    def __init__(self, unet_fg: nn.Module, unet_bg: nn.Module, vae: nn.Module, null_embeds: torch.Tensor,
                 alpha_layout: str = "unshuffle", scheduler_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.unet_fg, self.unet_bg, self.vae = unet_fg, unet_bg, vae
        self.vae.requires_grad_(False).eval()
        self.register_buffer("null_embeds", null_embeds.detach().float().reshape(1, *null_embeds.shape[-2:]))
        self.alpha_layout = alpha_layout
        self.scheduler_config = dict(scheduler_config or {})
        self.scheduler_config["prediction_type"] = "v_prediction"
        want = self.latent_channels * 2 + alpha_channels(self.vae_factor, alpha_layout)
        for name, unet in (("unet_fg", unet_fg), ("unet_bg", unet_bg)):
            if unet.config.in_channels != want:
                raise ValueError(f"{name} takes {unet.config.in_channels} input channels, but a {alpha_layout!r} FBDD "
                                 f"with this VAE needs {want} (2×{self.latent_channels} latent + alpha)")

    # ------------------------------------------------------------------ geometry
    @property
    def vae_factor(self) -> int:
        """Pixels per latent pixel along one side."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (VAE factor × UNet downsampling)."""
        return self.vae_factor * 2 ** (len(self.unet_fg.config.block_out_channels) - 1)

    # ------------------------------------------------------------------ maths
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` in ``[0, 1]`` → scaled latent ``B×4×H/f×W/f`` (the posterior's mean)."""
        dist = self.vae.encode(image.to(self.vae.dtype) * 2 - 1).latent_dist
        return dist.mode() * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latent → ``B×3×H×W`` in ``[0, 1]``."""
        x = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return ((x.float() + 1) / 2).clamp(0, 1)

    def condition(self, composite_latent: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Conditioning channels ``[alpha resized | composite latent | alpha unshuffled]``.

        Args:
            composite_latent: ``B×4×h×w`` from :meth:`encode`.
            alpha: ``B×1×H×W`` in ``[0, 1]``, ``H = f·h``.
        """
        a = alpha_condition(alpha.to(composite_latent.dtype), self.vae_factor, self.alpha_layout)
        return torch.cat([a[:, :1], composite_latent, a[:, 1:]], dim=1)

    def predict(self, layer: str, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``v`` predicted by the ``"fg"`` or ``"bg"`` UNet for a noisy latent ``B×4×h×w`` at steps ``t``."""
        unet = self.unet_fg if layer == "fg" else self.unet_bg
        emb = self.null_embeds.to(noisy).expand(noisy.shape[0], -1, -1)
        return unet(torch.cat([noisy, cond.to(noisy.dtype)], dim=1), t, encoder_hidden_states=emb).sample

    # ------------------------------------------------------------------ building and loading
    @classmethod
    def from_scratch(cls, vae: nn.Module, unet: dict[str, Any], alpha_layout: str = "unshuffle",
                     scheduler: dict[str, Any] | None = None, null_tokens: int = 1) -> FBDDModel:
        """Randomly initialised UNets around a given VAE; the null embedding is zeros ``1×null_tokens×D``."""
        from diffusers import DDPMScheduler, UNet2DConditionModel

        kw = dict(unet)
        f = 2 ** (len(vae.config.block_out_channels) - 1)
        c = int(vae.config.latent_channels)
        kw.update(in_channels=2 * c + alpha_channels(f, alpha_layout), out_channels=c)
        fg, bg = UNet2DConditionModel(**kw), UNet2DConditionModel(**kw)
        sched = DDPMScheduler(**{"prediction_type": "v_prediction", **(scheduler or {})})
        null = torch.zeros(1, null_tokens, int(fg.config.cross_attention_dim))
        return cls(fg, bg, vae, null, alpha_layout, dict(sched.config))

    @classmethod
    def from_inpainting(cls, name: str, alpha_layout: str = "unshuffle", vae: str | None = None,
                        scheduler: dict[str, Any] | None = None) -> FBDDModel:
        """Both UNets from a Stable Diffusion 2 inpainting pipeline (hub id or local folder).

        Reads ``unet/``, ``vae/``, ``scheduler/``, ``tokenizer/`` and ``text_encoder/``; widens
        ``conv_in`` for the unshuffled alpha (zero weights); encodes the null prompt once.
        """
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        from layerkit.modules.hub import pretrained_source

        src, kw = pretrained_source(name, "model.pretrained", marker="model_index.json")
        fg = UNet2DConditionModel.from_pretrained(src, subfolder="unet", **kw)
        if fg.config.in_channels != 9:
            raise ValueError(f"{name!r} is not an inpainting UNet (conv_in takes {fg.config.in_channels} channels, expected 9)")
        if vae:
            vsrc, vkw = pretrained_source(vae, "model.vae")
            vae_model = AutoencoderKL.from_pretrained(vsrc, **vkw)
        else:
            vae_model = AutoencoderKL.from_pretrained(src, subfolder="vae", **kw)
        f = 2 ** (len(vae_model.config.block_out_channels) - 1)
        widen_conv_in(fg, 2 * int(vae_model.config.latent_channels) + alpha_channels(f, alpha_layout))
        bg = copy.deepcopy(fg)
        tok = CLIPTokenizer.from_pretrained(src, subfolder="tokenizer", **kw)
        enc = CLIPTextModel.from_pretrained(src, subfolder="text_encoder", **kw)
        null = encode_null_prompt(tok, enc)
        del enc
        base = DDPMScheduler.from_pretrained(src, subfolder="scheduler", **kw).config
        sched = DDPMScheduler.from_config(base, **{"prediction_type": "v_prediction", **(scheduler or {})})
        return cls(fg, bg, vae_model, null, alpha_layout, dict(sched.config))

    @classmethod
    def from_pretrained(cls, name: str, torch_dtype: torch.dtype | None = None, local_files_only: bool = True) -> FBDDModel:
        """Load a model folder written by :meth:`save_pretrained`.

        Args:
            name: the folder, or a hub id with the same layout (resolve it first with
                :func:`layerkit.modules.hub.pretrained_source`).
            torch_dtype: dtype of the UNets and the VAE (default float32).
            local_files_only: never download (a hub id must then be in the local cache).

        Raises:
            MissingModelError: a local folder lacks files (they are listed).
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from safetensors.torch import load_file

        from layerkit.errors import MissingModelError

        root = Path(name).expanduser()
        if root.is_dir():
            missing = missing_files(root)
            if missing:
                raise MissingModelError(f"FBDD model folder {name!r} is incomplete: missing {', '.join(missing)}")

            def fetch(rel: str) -> str:
                return str(root / rel)
        else:
            from huggingface_hub import hf_hub_download

            def fetch(rel: str) -> str:
                return hf_hub_download(name, rel, local_files_only=local_files_only)
        src = str(root) if root.is_dir() else name
        cfg = json.loads(Path(fetch("fbdd_config.json")).read_text())
        sched = json.loads(Path(fetch("scheduler/scheduler_config.json")).read_text())
        null = load_file(fetch("null_prompt.safetensors"))["embeds"]
        kw: dict[str, Any] = {"local_files_only": local_files_only}
        if torch_dtype is not None:
            kw["torch_dtype"] = torch_dtype
        unets = [UNet2DConditionModel.from_pretrained(src, subfolder=s, **kw) for s in ("unet_fg", "unet_bg")]
        vae = AutoencoderKL.from_pretrained(src, subfolder="vae", **kw)
        return cls(unets[0], unets[1], vae, null, cfg.get("alpha_layout", "unshuffle"), sched)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the model folder (see the module docstring); returns it."""
        from diffusers import DDPMScheduler
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.unet_fg.save_pretrained(out / "unet_fg")
        self.unet_bg.save_pretrained(out / "unet_bg")
        self.vae.save_pretrained(out / "vae")
        DDPMScheduler.from_config(self.scheduler_config).save_pretrained(out / "scheduler")
        save_file({"embeds": self.null_embeds.detach().cpu().contiguous()}, str(out / "null_prompt.safetensors"))
        (out / "fbdd_config.json").write_text(json.dumps({"alpha_layout": self.alpha_layout, "format": "layerkit-fbdd-v1"}))
        return out
