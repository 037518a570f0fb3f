"""Haar wavelet transform in torch (differentiable, any device), used by the weight-free
wavelet refiner and the HFA nets.

Layout: ``B×C×H×W``; one level maps it to a low band ``B×C×H/2×W/2`` and high bands
``B×C×3×H/2×W/2`` (LH, HL, HH). Odd sizes are padded by reflection and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dwt_haar(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-level orthonormal Haar DWT.

    Args:
        x: ``B×C×H×W`` with even ``H`` and ``W``.

    Returns:
        ``(low B×C×H/2×W/2, high B×C×3×H/2×W/2)``.
    """
    if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"dwt_haar expects B×C×H×W with even H, W; got {tuple(x.shape)}")
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    low = (a + b + c + d) / 2
    lh = (a - b + c - d) / 2
    hl = (a + b - c - d) / 2
    hh = (a - b - c + d) / 2
    return low, torch.stack([lh, hl, hh], dim=2)


def idwt_haar(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dwt_haar`."""
    lh, hl, hh = high.unbind(dim=2)
    a = (low + lh + hl + hh) / 2
    b = (low - lh + hl - hh) / 2
    c = (low + lh - hl - hh) / 2
    d = (low - lh - hl + hh) / 2
    B, C, h, w = low.shape
    out = low.new_empty(B, C, 2 * h, 2 * w)
    out[..., 0::2, 0::2] = a
    out[..., 0::2, 1::2] = b
    out[..., 1::2, 0::2] = c
    out[..., 1::2, 1::2] = d
    return out


def wavedec(x: torch.Tensor, levels: int) -> tuple[torch.Tensor, list[torch.Tensor], tuple[int, int]]:
    """Multi-level Haar decomposition; pads ``x`` (reflect) to a multiple of ``2**levels``.

    Returns:
        ``(low, [high_level1 (finest), ..., high_levelN], original (H, W))``.
    """
    H, W = x.shape[-2:]
    m = 2 ** levels
    ph, pw = (-H) % m, (-W) % m
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(H, W) > max(ph, pw) else "replicate")
    highs = []
    for _ in range(levels):
        x, h = dwt_haar(x)
        highs.append(h)
    return x, highs, (H, W)


def waverec(low: torch.Tensor, highs: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`wavedec` (crops the padding)."""
    x = low
    for h in reversed(highs):
        x = idwt_haar(x, h)
    return x[..., : size[0], : size[1]]
