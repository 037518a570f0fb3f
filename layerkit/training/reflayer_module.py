"""Training of RefLayer: flow matching on the complete layer's latent + the alpha decoder, VAE frozen.

A batch (from :class:`RefLayerDataModule`) holds ``image``, ``layer`` (complete colour),
``canvas`` (drawn prompts) ``B×3×S×S``, ``alpha`` and ``visible`` ``B×1×S×S``, ``text`` (list of
strings, empty when dropped). Losses:

* ``fm``: MSE between the transformer's velocity and ``ε − x₀`` at ``x_σ = (1 − σ)x₀ + σε``,
  ``x₀`` the VAE latent of the complete layer flattened over the matte grey
  (``RefLayerModel.flatten``), ``σ`` logit-normal (SD3's sampling);
* ``alpha``: L1 + ``grad_weight``·L1 of the finite-difference gradients between the alpha decoder's
  output on ``x₀`` and the GT alpha (the alpha decoder trains on clean latents; the VAE is frozen);
* ``loss = fm + alpha_weight · alpha``.

Validation: the losses at fixed noise, then the first ``sample_images`` samples are generated
(``sample_steps`` Euler steps) and scored: ``val/sample_hidden_l1`` (RGB L1 over the hidden
part, ``GT α > 0.5`` and not visible), ``val/none_hidden_l1`` (the same for the layer without
completion: the visible part only, 0 elsewhere), ``val/meanfill_hidden_l1`` (a trivial completion:
the hidden part filled with the mean colour of the visible part, the bar a learned completion must
clear), ``val/sample_alpha_iou``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from layerkit.errors import DataError
from layerkit.training.base import TrainModule
from layerkit.training.datamodule import make_loader
from layerkit.training.reflayer_data import KINDS, _Loader, drop_prompts, make_triplet, read_triplet, to_tensors


class TripletDataset(Dataset):
    """Triplets made on the fly (``fg_files``/``bg_files``) or read from written sample folders (``dirs``)."""

    def __init__(self, fg_files: Sequence[Path], bg_files: Sequence[Path], length: int, size: int, seed: int, fixed: bool,
                 keep: float, occlusion: tuple[float, float], occluder_files: Sequence[Path] | None = None,
                 dirs: Sequence[Path] | None = None) -> None:
        self.fg, self.bg, self.occ = list(fg_files), list(bg_files), list(occluder_files or fg_files)
        self.length, self.size, self.seed, self.fixed = int(length), int(size), int(seed), fixed
        self.keep, self.occlusion, self.dirs = float(keep), tuple(occlusion), list(dirs or [])
        self.loader = _Loader()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Any]:
        extra = [] if self.fixed else [int(torch.randint(0, 2 ** 31 - 1, ()).item())]
        rng = np.random.default_rng([self.seed, int(self.fixed), i, *extra])
        if self.dirs:
            t, label, _ = read_triplet(self.dirs[i % len(self.dirs)])
        else:
            target = self.fg[int(rng.integers(len(self.fg)))]
            others = [p for p in self.occ if p != target] or self.occ
            k = min(len(others), int(rng.choice([0, 1, 1, 2])))
            occ = [others[j] for j in rng.choice(len(others), size=k, replace=False)] if k else []
            t = make_triplet(self.loader.rgba(target), [self.loader.rgba(p) for p in occ],
                             self.loader.rgb(self.bg[int(rng.integers(len(self.bg)))]), self.size, rng, occlusion=self.occlusion)  # type: ignore[arg-type]
            from layerkit.training.reflayer_data import _label

            label = _label(target)
        return to_tensors(t, label, drop_prompts(rng, self.keep, KINDS))


class RefLayerDataModule(L.LightningDataModule):
    """Train / validation triplets; the validation *targets* are objects never used as training targets.

    Args:
        fg_dir: folder of RGBA PNG objects (on-the-fly triplets).
        bg_dir: folder of background photos.
        root: a ``make-dataset --task reflayer`` folder instead of ``fg_dir``/``bg_dir``.
        size: sample side (multiple of 8).
        batch_size: samples per batch.
        num_workers: data worker processes.
        train_samples: training samples per epoch.
        val_samples: validation samples (fixed seeds).
        val_fraction: share of objects (targets) held out for validation.
        seed: split and validation seed.
        occlusion: ``[min, max]`` hidden share of the target aimed at.
        prompt_keep: probability of keeping each prompt kind (at least one is kept).
    """

    def __init__(self, fg_dir: str | None = None, bg_dir: str | None = None, root: str | None = None, size: int = 64,
                 batch_size: int = 8, num_workers: int = 0, train_samples: int = 800, val_samples: int = 32,
                 val_fraction: float = 0.15, seed: int = 0, occlusion: Sequence[float] = (0.1, 0.5),
                 prompt_keep: float = 0.5) -> None:
        super().__init__()
        if size < 16 or size % 8:
            raise DataError(f"data.size must be a multiple of 8 and >= 16, got {size}")
        if train_samples < batch_size:
            raise DataError(f"data.train_samples ({train_samples}) must be >= data.batch_size ({batch_size})")
        if not 0.0 < prompt_keep <= 1.0:
            raise DataError(f"data.prompt_keep must be in (0, 1], got {prompt_keep}")
        self.save_hyperparameters()
        self.split: dict[str, list[str]] = {}
        self.train_set: TripletDataset | None = None
        self.val_set: TripletDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        from layerkit.training.datamodule import list_images, split_files

        hp = self.hparams
        occ = tuple(hp.occlusion)
        if hp.root:
            root = Path(hp.root)
            dirs = sorted(d for d in root.iterdir() if (d / "meta.json").is_file()) if root.is_dir() else []
            if not dirs:
                raise DataError(f"data.root {str(root)!r} holds no triplet folder; make one with "
                                "layerkit make-dataset --task reflayer --fg-dir FG --bg-dir BG -o DIR")
            targets = sorted({read_meta(d)["target"] for d in dirs})
            _, val_t = split_files([Path(t) for t in targets], hp.val_fraction, hp.seed)
            held = {p.name for p in val_t}
            tr = [d for d in dirs if read_meta(d)["target"] not in held]
            va = [d for d in dirs if read_meta(d)["target"] in held] or dirs[:1]
            self.split = {"fg_train": sorted(set(targets) - held), "fg_val": sorted(held)}
            self.train_set = TripletDataset([], [], hp.train_samples, hp.size, hp.seed, False, hp.prompt_keep, occ,
                                            dirs=tr or dirs)
            self.val_set = TripletDataset([], [], min(hp.val_samples, len(va)), hp.size, hp.seed, True, hp.prompt_keep, occ,
                                          dirs=va)
            return
        fgs = [p for p in list_images(hp.fg_dir, "fg") if p.suffix.lower() == ".png"]
        if len(fgs) < 2:
            raise DataError(f"fg folder {str(hp.fg_dir)!r} needs at least 2 RGBA PNG files")
        bgs = list_images(hp.bg_dir, "bg")
        fg_tr, fg_va = split_files(fgs, hp.val_fraction, hp.seed)
        bg_tr, bg_va = split_files(bgs, hp.val_fraction, hp.seed + 1)
        self.split = {"fg_train": [p.name for p in fg_tr], "fg_val": [p.name for p in fg_va],
                      "bg_train": [p.name for p in bg_tr], "bg_val": [p.name for p in bg_va]}
        self.train_set = TripletDataset(fg_tr, bg_tr, hp.train_samples, hp.size, hp.seed, False, hp.prompt_keep, occ)
        self.val_set = TripletDataset(fg_va, bg_va, hp.val_samples, hp.size, hp.seed, True, hp.prompt_keep, occ,
                                      occluder_files=fgs)

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        return make_loader(ds, int(self.hparams.batch_size), int(self.hparams.num_workers), shuffle)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        return self._loader(self.val_set, False)


def read_meta(d: Path) -> dict[str, Any]:
    import json

    return json.loads((d / "meta.json").read_text())


def gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical finite differences of two ``B×1×H×W`` maps."""
    return (F.l1_loss(x[..., :, 1:] - x[..., :, :-1], y[..., :, 1:] - y[..., :, :-1])
            + F.l1_loss(x[..., 1:, :] - x[..., :-1, :], y[..., 1:, :] - y[..., :-1, :]))


def hidden_l1(rgb: torch.Tensor, gt: torch.Tensor, alpha: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Mean RGB L1 over the hidden part (``α > 0.5``, ``visible < 0.5``); NaN without one."""
    m = ((alpha > 0.5) & (visible < 0.5)).float()
    n = m.sum()
    return (((rgb - gt).abs().mean(1, keepdim=True) * m).sum() / n) if n > 0 else torch.tensor(float("nan"))


def mean_fill(rgb: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """A trivial completion: the visible part kept, every other pixel the mean colour of the visible part."""
    m = (visible > 0.5).to(rgb)
    mean = (rgb * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp_min(1.0)
    return rgb * m + mean * (1 - m)


class RefLayerModule(TrainModule):
    """RefLayer training (module docstring).

    Args:
        model: a :class:`~layerkit.modules.decomposer.reflayer_nets.RefLayerModel`.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        ema_decay: EMA decay of the transformer and alpha decoder (0 = off).
        alpha_weight: weight of the alpha-decoder loss.
        grad_weight: weight of the gradient term inside the alpha loss.
        sample_steps: Euler steps of the validation samples.
        sample_images: validation samples generated per validation.
    """

    def __init__(self, model: nn.Module, lr: float = 1e-4, weight_decay: float = 0.0, warmup_steps: int = 0,
                 ema_decay: float = 0.0, alpha_weight: float = 1.0, grad_weight: float = 1.0, sample_steps: int = 10,
                 sample_images: int = 4) -> None:
        super().__init__({"transformer": model.transformer, "alpha_decoder": model.alpha_decoder}, lr=lr,
                         weight_decay=weight_decay, warmup_steps=warmup_steps, ema_decay=ema_decay)
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def _with(self, nets: nn.ModuleDict) -> nn.Module:
        """The model with ``nets`` (e.g. the EMA copy) in place of its trainable parts."""
        if nets is self.nets:
            return self.model
        m = copy.copy(self.model)
        m._modules = dict(self.model._modules)  # a shallow copy shares the submodule dict
        m.transformer, m.alpha_decoder = nets["transformer"], nets["alpha_decoder"]
        return m

    def losses(self, batch: dict[str, Any], model: nn.Module,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            x0 = model.encode(model.flatten(batch["layer"], batch["alpha"]))
            cond = torch.cat([model.encode(batch["image"]), model.encode(batch["canvas"])], dim=1)
            text = model.encode_text(list(batch["text"]), x0.device)
        n = x0.shape[0]
        sigma = torch.sigmoid(torch.randn(n, generator=generator)).to(x0)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        s = sigma.view(-1, 1, 1, 1)
        pred = model.predict((1 - s) * x0 + s * noise, sigma, cond, text)
        fm = F.mse_loss(pred.float(), (noise - x0).float())
        a = model.alpha_decoder(x0.to(model.alpha_decoder.dtype))
        alpha = F.l1_loss(a, batch["alpha"]) + self.hparams.grad_weight * gradient_l1(a, batch["alpha"])
        return {"fm": fm, "alpha": alpha, "loss": fm + self.hparams.alpha_weight * alpha}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch, self.model)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch["image"].shape[0])
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        model = self._with(self.eval_nets())
        n = batch["image"].shape[0]
        gen = torch.Generator().manual_seed(1000 + batch_idx)
        self.log_dict({f"val/{k}": v for k, v in self.losses(batch, model, gen).items()}, batch_size=n)
        k = min(n, int(self.hparams.sample_images))
        if k <= 0:
            return
        from layerkit.modules.decomposer.reflayer import RefLayerDecomposer

        sampler = RefLayerDecomposer(steps=int(self.hparams.sample_steps))
        sampler.manual_seed(batch_idx)
        rgb, a = sampler.sample(model, batch["image"][:k], batch["canvas"][:k], list(batch["text"][:k]))
        gt_a, vis, gt = batch["alpha"][:k], batch["visible"][:k], batch["layer"][:k]
        none = gt * (vis > 0.5)
        mean = mean_fill(gt, vis)
        inter = torch.minimum(a, gt_a).sum()
        union = torch.maximum(a, gt_a).sum().clamp_min(1e-6)
        self.log_dict({"val/sample_hidden_l1": hidden_l1(rgb, gt, gt_a, vis),
                       "val/none_hidden_l1": hidden_l1(none, gt, gt_a, vis),
                       "val/meanfill_hidden_l1": hidden_l1(mean, gt, gt_a, vis),
                       "val/sample_alpha_iou": inter / union}, batch_size=k)
        if batch_idx == 0:
            self.keep_images(0, {"image": batch["image"][:k], "canvas": batch["canvas"][:k], "layer": rgb * a,
                                 "layer_gt": gt * gt_a, "alpha": a, "alpha_gt": gt_a})

    def export(self, folder: str | os.PathLike, meta: dict[str, Any]) -> Path:
        """Write ``folder/reflayer/`` (loadable by ``RefLayerDecomposer(model=...)``)."""
        import json

        out = self._with(self.eval_nets()).save_pretrained(Path(folder) / "reflayer")  # type: ignore[operator]
        (out / "train_meta.json").write_text(json.dumps(meta, indent=1, default=str))
        return out


def build(model: dict[str, Any], optim: dict[str, Any]) -> RefLayerModule:
    """Build the RefLayer model from the ``model`` section, then the module.

    ``model`` keys: ``pretrained`` (an SD3 checkpoint folder or hub id; None = from scratch),
    ``vae`` (AutoencoderKL folder or hub id; required from scratch), ``text_encoder`` (a folder
    with ``text_encoder/`` (CLIPTextModelWithProjection) and ``tokenizer/``; None = no text),
    ``transformer`` (``SD3Transformer2DModel`` arguments, from scratch), ``text_tokens``, and the
    module's ``alpha_weight``, ``grad_weight``, ``sample_steps``, ``sample_images``.

    Raises:
        ConfigError: a missing or unreadable model part (naming its key), an unknown key.
    """
    from layerkit.errors import ConfigError
    from layerkit.modules.decomposer.reflayer_nets import RefLayerModel
    from layerkit.modules.hub import pretrained_source
    from layerkit.training.config import check_keys

    m = dict(model)
    pretrained, vae_name, text_name = m.pop("pretrained", None), m.pop("vae", None), m.pop("text_encoder", None)
    transformer, tokens = m.pop("transformer", None), int(m.pop("text_tokens", 8))
    check_keys("model", m, RefLayerModule, exclude=("model", "lr", "weight_decay", "warmup_steps", "ema_decay"))

    def load(key: str, name: str, fn: Any) -> Any:
        src, kw = pretrained_source(name, key)
        try:
            return fn(src, kw)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load {key}={name}: {str(e).splitlines()[0]}") from None

    vae = None
    if vae_name:
        from diffusers import AutoencoderKL

        vae = load("model.vae", vae_name, lambda s, kw: AutoencoderKL.from_pretrained(s, **kw))
    if pretrained:
        try:
            net = RefLayerModel.from_sd3(pretrained, vae=vae, text_tokens=tokens)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load model.pretrained={pretrained}: {str(e).splitlines()[0]}") from None
        return RefLayerModule(net, **m, **optim)
    if vae is None or not transformer:
        raise ConfigError("a RefLayer trained from scratch needs model.vae (an AutoencoderKL folder, e.g. from "
                          "'layerkit train vae_tiny': RUN/export/vae) and model.transformer; or set model.pretrained "
                          "to a Stable Diffusion 3 folder")
    enc = tok = None
    if text_name:
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        enc = load("model.text_encoder", text_name,
                   lambda s, kw: CLIPTextModelWithProjection.from_pretrained(s, subfolder="text_encoder", **kw))
        tok = load("model.text_encoder", text_name, lambda s, kw: CLIPTokenizer.from_pretrained(s, subfolder="tokenizer", **kw))
    return RefLayerModule(RefLayerModel.from_scratch(vae, dict(transformer), enc, tok, tokens), **m, **optim)
