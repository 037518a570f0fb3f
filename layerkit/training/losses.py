"""Losses and metrics of the layer-decomposition trainings (torch, ``B×C×H×W``, ``[0, 1]``).

* :func:`masked_mse` — FAN's loss: MSE to ``F_gt`` where ``α > 0`` (weighted by ``α``).
* :func:`high_frequency_loss` — LayeringDiff Eq. 3, ``L_H(B, B̂) = Σ_s Σ_k ‖H_{s,k}(B) − H_{s,k}(B̂)‖² / N_s``.
* :func:`ban_loss` — Eq. 2, ``L_MSE(B, B_gt) + λ·L_H(B, B̂)``.
* metrics: background PSNR in the occluded region, α-weighted foreground L1, and a sharpness
  measure of the soft band (Haar high-band energy ratio and error against ground truth).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from layerkit.ops.haar import wavedec


def masked_mse(x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Weighted mean of ``(x − target)²``; ``mask`` is ``B×1×H×W``, bool or a weight in ``[0, 1]``
    (zero weight = pixel ignored)."""
    m = mask.to(x.dtype).expand_as(x)
    return ((x - target) ** 2 * m).sum() / m.sum().clamp_min(1.0)


def high_frequency_loss(x: torch.Tensor, ref: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Eq. 3: squared Haar high-band differences, each scale normalised by its pixel count.

    Args:
        x: ``B×C×H×W`` output.
        ref: ``B×C×H×W`` reference whose detail ``x`` should follow (``B̂``).
        levels: scales ``s ∈ {0, …, levels − 1}`` (the paper uses 3).

    Returns:
        Scalar: ``Σ_s Σ_k mean over (batch, channel, pixel) of (H_{s,k}(x) − H_{s,k}(ref))²``.
    """
    _, hx, _ = wavedec(x, levels)
    _, hr, _ = wavedec(ref, levels)
    return sum(((a - b) ** 2).mean(dim=(0, 1, 3, 4)).sum() for a, b in zip(hx, hr))  # type: ignore[return-value]


def ban_loss(b: torch.Tensor, b_gt: torch.Tensor, b_hat: torch.Tensor, weight: float = 0.2, levels: int = 3) -> torch.Tensor:
    """Eq. 2: ``MSE(B, B_gt) + weight · L_H(B, B̂)`` over the whole layer."""
    return F.mse_loss(b, b_gt) + weight * high_frequency_loss(b, b_hat, levels)


def bg_psnr_occluded(b: torch.Tensor, b_gt: torch.Tensor, alpha: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    """PSNR (dB) of the background where the object covers it (``α > threshold``), per sample.

    Returns:
        ``B`` values; NaN for a sample without occluded pixels.
    """
    m = (alpha > threshold).to(b.dtype).expand_as(b)
    mse = ((b - b_gt) ** 2 * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def fg_l1_weighted(f: torch.Tensor, f_gt: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Foreground colour L1 weighted by ``α`` (``Σ α·|F − F_gt| / (3·Σ α)``), per sample."""
    w = alpha.to(f.dtype).expand_as(f)
    return ((f - f_gt).abs() * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)).clamp_min(1e-6)


def soft_band(alpha: torch.Tensor, low: float = 0.01, high: float = 0.99, grow: int = 2) -> torch.Tensor:
    """``B×1×H×W`` bool: the soft band ``low < α < high``, grown by ``grow`` pixels."""
    band = ((alpha > low) & (alpha < high)).to(alpha.dtype)
    if grow > 0:
        band = F.max_pool2d(band, 2 * grow + 1, stride=1, padding=grow)
    return band > 0


def band_sharpness(x: torch.Tensor, gt: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Detail in the soft band, from the finest Haar level.

    Args:
        x: ``B×3×H×W`` output layer.
        gt: ``B×3×H×W`` ground-truth layer.
        alpha: ``B×1×H×W`` ground-truth matte (defines the band).

    Returns:
        ``(ratio, error_db)`` per sample: ``ratio`` = high-band energy of ``x`` / that of ``gt``
        in the band (1 = as sharp as the truth, < 1 blurred, > 1 false texture); ``error_db`` =
        PSNR of the high bands against the truth's (higher = detail more correct). NaN without band.
    """
    _, hx, _ = wavedec(x, 1)
    _, hg, _ = wavedec(gt, 1)
    band, _, _ = wavedec(soft_band(alpha).to(x.dtype), 1)
    m = (band > 0).to(x.dtype)[:, :, None]  # B×1×1×h×w
    n = (m.sum(dim=(1, 2, 3, 4)) * x.shape[1] * 3).clamp_min(1.0)
    ex = (hx[0] ** 2 * m).sum(dim=(1, 2, 3, 4))
    eg = (hg[0] ** 2 * m).sum(dim=(1, 2, 3, 4))
    err = ((hx[0] - hg[0]) ** 2 * m).sum(dim=(1, 2, 3, 4)) / n
    empty = m.sum(dim=(1, 2, 3, 4)) == 0
    ratio = torch.where(empty, torch.nan, ex / eg.clamp_min(1e-10))
    error_db = torch.where(empty, torch.nan, 10 * torch.log10(1.0 / err.clamp_min(1e-10)))
    return ratio, error_db
