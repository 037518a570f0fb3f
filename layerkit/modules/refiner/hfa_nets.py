"""The HFA alignment networks (LayeringDiff §3.3): FAN for the foreground, BAN for the background.

Each net takes the composite ``C``, the matte ``α`` and one decoded layer ``X̂`` (``F̂`` or
``B̂``) and returns the refined layer ``X``. Layout: torch ``B×C×H×W``, colours in ``[0, 1]``,
``α`` in ``[0, 1]`` (``B×1×H×W``), straight (un-premultiplied) colour.

Design (a small UNet working on Haar bands):

1. A weight-free *prior* moves ``C``'s Haar high bands into ``X̂`` where the layer is visible
   (weight ``α`` for F, ``1 − α`` for B, over ``prior_levels`` scales) — the same rule as the
   weight-free wavelet refiner, differentiable here.
2. ``[C, α, X̂, prior]`` is split by one Haar level into its low band and its LH/HL/HH bands
   (``4·10`` channels at half resolution) and run through a UNet.
3. The UNet predicts a per-pixel gate ``g ∈ (0, 1)`` and the Haar coefficients (3 low + 9
   high) of a correction ``Δ``: ``X = X̂ + g·(prior − X̂) + Δ``. The gate lets the net use the
   composite's detail only where it belongs to the layer (in the soft band ``C``'s detail also
   holds the edge between ``F`` and ``B``, which belongs to neither). The last convolution is
   zero-initialised with a gate bias of :data:`GATE_INIT`: an untrained net returns ``X̂``
   plus 2 % of the prior's change, and training decides where the composite's detail helps.

The exact-copy rule (``F = C`` where ``α = 1``, ``B = C`` where ``α = 0``) is
:func:`copy_visible`, applied after the net by the refiner and in training.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from layerkit.modules.refiner.wavelet import POOLS
from layerkit.ops.haar import dwt_haar, idwt_haar, wavedec, waverec
from layerkit.ops.latent import crop_to, pad_to_multiple

#: ``layer`` names a net can align
LAYERS = ("foreground", "background")
#: initial logit of the gate (sigmoid(−4) ≈ 0.018: start from the decoded layer)
GATE_INIT = -4.0
#: ``format`` tag of an exported HFA checkpoint
CHECKPOINT_FORMAT = "layerkit-hfa-v1"


def visibility(alpha: torch.Tensor, layer: str) -> torch.Tensor:
    """How much of ``layer`` the composite shows: ``α`` for the foreground, ``1 − α`` for the background."""
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
    return alpha if layer == "foreground" else 1.0 - alpha


def transfer_high_bands(target: torch.Tensor, source: torch.Tensor, weight: torch.Tensor, levels: int,
                        pool: str = "min") -> torch.Tensor:
    """Blend ``source``'s Haar high bands into ``target``'s with a per-pixel weight (differentiable).

    Args:
        target: ``B×C×H×W`` image whose detail is replaced.
        source: ``B×C×H×W`` image giving the detail.
        weight: ``B×1×H×W`` in ``[0, 1]`` (1 = take ``source``'s detail), min- (``pool="min"``) or
            average-pooled per level, as in :func:`layerkit.modules.refiner.wavelet.transfer_high_frequencies`.
        levels: Haar levels; 0 returns ``target``.

    Returns:
        ``B×C×H×W``; low band of ``target``, high bands blended.
    """
    if levels <= 0:
        return target
    lt, ht, size = wavedec(target, levels)
    _, hs, _ = wavedec(source, levels)
    w, _ = pad_to_multiple(weight, 2 ** levels)
    out = []
    for h_t, h_s in zip(ht, hs):
        w = -F.max_pool2d(-w, 2) if pool == "min" else F.avg_pool2d(w, 2)
        out.append(h_t + w[:, :, None] * (h_s - h_t))
    return waverec(lt, out, size)


def copy_visible(x: torch.Tensor, image: torch.Tensor, alpha: torch.Tensor, layer: str,
                 opaque: float = 0.999, clear: float = 0.001) -> torch.Tensor:
    """The exact-copy rule: ``F = C`` where ``α >= opaque``, ``B = C`` where ``α <= clear``.

    Args:
        x: ``B×3×H×W`` refined layer.
        image: ``B×3×H×W`` composite.
        alpha: ``B×1×H×W`` matte.
        layer: ``"foreground"`` or ``"background"``.
    """
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
    mask = alpha >= opaque if layer == "foreground" else alpha <= clear
    return torch.where(mask, image, x)


class _Block(nn.Module):
    """conv3×3 → SiLU → conv3×3 (+ 1×1 shortcut) → SiLU; keeps ``H×W``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.conv2(F.silu(self.conv1(x))) + self.skip(x))


class AlignmentNet(nn.Module):
    """FAN (``layer="foreground"``) or BAN (``layer="background"``): ``(C, α, X̂) → X``.

    Args:
        layer: which layer this net aligns; sets the visibility weight of the prior.
        channels: feature widths per UNet level (at ``H/2``, ``H/4``, …); 3 levels → inputs are
            padded to a multiple of 8.
        prior_levels: Haar levels of the weight-free prior (0 = the prior is ``X̂`` itself).
        prior_pool: how the prior weighs a band over its footprint (``min`` or ``mean``, see
            :func:`transfer_high_bands`); checkpoints written before this option load as ``mean``.

    Example:
        >>> ban = AlignmentNet("background", channels=(16, 32))
        >>> b = ban(image, alpha, b_hat)            # B×3×H×W each, alpha B×1×H×W
    """

    def __init__(self, layer: str = "background", channels: tuple[int, ...] | list[int] = (32, 64, 128),
                 prior_levels: int = 2, prior_pool: str = "min") -> None:
        super().__init__()
        if prior_pool not in POOLS:
            raise ValueError(f"prior_pool must be one of {', '.join(POOLS)}, got {prior_pool!r}")
        self.prior_pool = prior_pool
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive widths, got {channels}")
        self.layer = layer
        self.channels = channels
        self.prior_levels = int(prior_levels)
        cin = 4 * 10  # Haar bands (low, LH, HL, HH) of [C, α, X̂, prior]
        self.stem = _Block(cin, channels[0])
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(channels[:-1], channels[1:]))
        self.enc = nn.ModuleList(_Block(c, c) for c in channels[1:])
        self.up = nn.ModuleList(nn.Conv2d(b, a, 3, padding=1) for a, b in zip(channels[:-1], channels[1:]))
        self.dec = nn.ModuleList(_Block(2 * a, a) for a in channels[:-1])
        self.head = nn.Conv2d(channels[0], 12 + 4, 3, padding=1)  # Δ's Haar coefficients + the gate's
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            self.head.bias[12] = 2.0 * GATE_INIT  # inverse Haar halves the low band: logit = GATE_INIT

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (stored in checkpoints so the architecture can be rebuilt)."""
        return {"layer": self.layer, "channels": list(self.channels), "prior_levels": self.prior_levels,
                "prior_pool": self.prior_pool}

    @property
    def multiple(self) -> int:
        """Inputs are padded to a multiple of this size."""
        return 2 ** max(len(self.channels), self.prior_levels)

    def prior(self, image: torch.Tensor, alpha: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """The weight-free alignment the net corrects (``B×3×H×W``)."""
        return transfer_high_bands(estimate, image, visibility(alpha, self.layer), self.prior_levels, self.prior_pool)

    def forward(self, image: torch.Tensor, alpha: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """Refine one layer.

        Args:
            image: ``B×3×H×W`` composite ``C`` in ``[0, 1]``.
            alpha: ``B×1×H×W`` matte.
            estimate: ``B×3×H×W`` decoded layer ``X̂`` (``F̂`` for FAN, ``B̂`` for BAN).

        Returns:
            ``B×3×H×W`` refined layer (before :func:`copy_visible`; not clipped).
        """
        if image.ndim != 4 or image.shape[1] != 3 or estimate.shape != image.shape:
            raise ValueError(f"image and estimate must both be B×3×H×W, got {tuple(image.shape)} and {tuple(estimate.shape)}")
        if alpha.shape != (image.shape[0], 1, *image.shape[2:]):
            raise ValueError(f"alpha must be B×1×H×W matching the image, got {tuple(alpha.shape)}")
        m = self.multiple
        image_p, size = pad_to_multiple(image, m)
        alpha_p, _ = pad_to_multiple(alpha, m)
        est_p, _ = pad_to_multiple(estimate, m)
        base = self.prior(image_p, alpha_p, est_p)
        x = torch.cat([image_p, alpha_p, est_p, base], dim=1) * 2.0 - 1.0
        low, high = dwt_haar(x)
        h = self.stem(torch.cat([low, high.flatten(1, 2)], dim=1))
        skips = []
        for down, enc in zip(self.down, self.enc):
            skips.append(h)
            h = enc(down(h))
        for up, dec, skip in zip(reversed(self.up), reversed(self.dec), reversed(skips)):
            h = up(F.interpolate(h, size=skip.shape[-2:], mode="nearest"))
            h = dec(torch.cat([h, skip], dim=1))
        d = self.head(h)
        delta = idwt_haar(d[:, :3], d[:, 3:12].unflatten(1, (3, 3)))
        gate = torch.sigmoid(idwt_haar(d[:, 12:13], d[:, 13:16].unflatten(1, (1, 3))))
        return crop_to(est_p + gate * (base - est_p) + delta, size)


def save_checkpoint(path: str | os.PathLike, fan: AlignmentNet, ban: AlignmentNet, meta: dict[str, Any] | None = None) -> None:
    """Write a FAN + BAN checkpoint readable with ``torch.load(weights_only=True)``.

    The file is a dict ``{"format", "fan": {"config", "state_dict"}, "ban": {...}, "meta"}``;
    ``meta`` holds plain values only (training config, command line, metrics).
    """
    from layerkit.io.atomic import atomic_path

    data = {"format": CHECKPOINT_FORMAT, "meta": dict(meta or {})}
    for name, net in (("fan", fan), ("ban", ban)):
        data[name] = {"config": net.config, "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(data, tmp)


def load_checkpoint(path: str | os.PathLike) -> tuple[AlignmentNet, AlignmentNet, dict[str, Any]]:
    """Build FAN and BAN from their stored configs, then load their weights (CPU).

    Returns:
        ``(fan, ban, meta)``, both nets in eval mode.

    Raises:
        MissingModelError: the file does not exist.
        ConfigError: the file is not a layerkit HFA checkpoint.
    """
    from layerkit.errors import ConfigError, MissingModelError

    if not os.path.isfile(path):
        raise MissingModelError(f"HFA checkpoint {str(path)!r} not found; train one with 'layerkit train hfa' or set refiner.checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors have many types
        raise ConfigError(f"cannot read HFA checkpoint {str(path)!r}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{str(path)!r} is not a layerkit HFA checkpoint (format {CHECKPOINT_FORMAT}); "
                          "export one with 'layerkit train hfa' (it writes export/hfa.pt)")
    nets = []
    for name in ("fan", "ban"):
        net = AlignmentNet(**{"prior_pool": "mean", **data[name]["config"]})  # older files: the mean prior
        net.load_state_dict(data[name]["state_dict"])
        nets.append(net.eval())
    return nets[0], nets[1], dict(data.get("meta") or {})
