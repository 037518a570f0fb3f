"""Bringing pixel-space conditions to latent resolution, and padding to a size a net accepts.

Layout: torch ``B×C×H×W``. A latent-diffusion VAE maps ``H×W`` pixels to ``H/f×W/f`` latents
(``f = 8`` for Stable Diffusion). The alpha matte reaches latent resolution in one of two ways:

* :func:`unshuffle_alpha` (LayeringDiff, pixel unshuffle): ``B×1×H×W`` → ``B×f²×H/f×W/f``, no
  information lost — every alpha value of an ``f×f`` block becomes one channel;
* :func:`resize_alpha` (Stable Diffusion 2 inpainting's mask channel): ``B×1×H/f×W/f``, the
  block mean (area resize), which equals the mean over the unshuffled channels.

Example:
    >>> a = torch.rand(2, 1, 64, 64)
    >>> unshuffle_alpha(a, 8).shape, resize_alpha(a, 8).shape
    (torch.Size([2, 64, 8, 8]), torch.Size([2, 1, 8, 8]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: the ways :func:`alpha_condition` can bring alpha to latent resolution
ALPHA_LAYOUTS = ("unshuffle", "resize")


def _check_alpha(alpha: torch.Tensor, factor: int) -> None:
    if alpha.ndim != 4 or alpha.shape[1] != 1:
        raise ValueError(f"alpha must be B×1×H×W, got {tuple(alpha.shape)}")
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if alpha.shape[-2] % factor or alpha.shape[-1] % factor:
        raise ValueError(f"alpha size {tuple(alpha.shape[-2:])} is not a multiple of the latent factor {factor}; "
                         "pad it first (layerkit.ops.latent.pad_to_multiple)")


def unshuffle_alpha(alpha: torch.Tensor, factor: int) -> torch.Tensor:
    """Pixel-unshuffle a matte to latent resolution (lossless).

    Args:
        alpha: ``B×1×H×W`` in ``[0, 1]``; ``H`` and ``W`` multiples of ``factor``.
        factor: the VAE's downscale factor ``f``.

    Returns:
        ``B×f²×H/f×W/f``; channel ``i·f + j`` holds pixel ``(i, j)`` of each ``f×f`` block.
    """
    _check_alpha(alpha, factor)
    return F.pixel_unshuffle(alpha, factor)


def resize_alpha(alpha: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-resize a matte to latent resolution (the inpainting UNet's mask channel).

    Args:
        alpha: ``B×1×H×W`` in ``[0, 1]``; ``H`` and ``W`` multiples of ``factor``.
        factor: the VAE's downscale factor ``f``.

    Returns:
        ``B×1×H/f×W/f``, the mean of each ``f×f`` block.
    """
    _check_alpha(alpha, factor)
    return F.avg_pool2d(alpha, factor) if factor > 1 else alpha


def alpha_condition(alpha: torch.Tensor, factor: int, layout: str) -> torch.Tensor:
    """The alpha channels a FBDD UNet is conditioned on.

    Args:
        alpha: ``B×1×H×W`` in ``[0, 1]``.
        factor: VAE downscale factor.
        layout: ``"resize"`` → ``B×1×h×w`` (SD2-inpainting's 9-channel layout);
            ``"unshuffle"`` → ``B×(1+f²)×h×w``: the resized channel first (so a widened inpainting
            UNet keeps its pretrained mask input), then the ``f²`` unshuffled channels.

    Raises:
        ValueError: unknown layout or a size that is not a multiple of ``factor``.
    """
    if layout not in ALPHA_LAYOUTS:
        raise ValueError(f"unknown alpha layout {layout!r}; valid: {', '.join(ALPHA_LAYOUTS)}")
    small = resize_alpha(alpha, factor)
    if layout == "resize":
        return small
    return torch.cat([small, unshuffle_alpha(alpha, factor)], dim=1)


def alpha_channels(factor: int, layout: str) -> int:
    """Number of channels :func:`alpha_condition` returns for ``factor`` and ``layout``."""
    if layout not in ALPHA_LAYOUTS:
        raise ValueError(f"unknown alpha layout {layout!r}; valid: {', '.join(ALPHA_LAYOUTS)}")
    return 1 if layout == "resize" else 1 + factor * factor


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "replicate") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom/right of ``B×C×H×W`` so ``H`` and ``W`` are multiples of ``multiple``.

    Args:
        x: ``B×C×H×W`` tensor.
        multiple: size granularity (e.g. ``f · 2**(UNet levels − 1)``).
        mode: ``F.pad`` mode (``"replicate"``, ``"reflect"``, ``"constant"``).

    Returns:
        ``(padded, (H, W))``: the padded tensor and the original size, for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        if mode == "reflect" and (ph >= h or pw >= w):
            mode = "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size = (H, W)``."""
    return x[..., : size[0], : size[1]]
