"""Alpha matting with ViTMatte (transformers ``VitMatteForImageMatting``).

The network takes a 4-channel input — the normalised RGB image and the trimap (0, 0.5, 1) as
the 4th channel — whose height and width are multiples of 32 (the processor's
``size_divisor``): the input is zero-padded at the bottom/right, as the processor does, and the
prediction is cropped back. Large images stay tractable:

* only the **region of interest** is matted — the box around the unknown band plus
  ``context`` pixels; elsewhere the trimap already says 0 or 1;
* a region longer than ``tile`` is matted in overlapping ``tile × tile`` **tiles** blended with
  linear ramps; tiles without unknown pixels are skipped.

Known trimap pixels keep their value (``alpha = 1`` where the trimap is 1, ``0`` where it is 0).
On CUDA the model runs in bf16/fp16 (``dtype``); the result is always float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.modules.base import Matter
from layerkit.modules.hub import PretrainedStage

if TYPE_CHECKING:
    import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` px shared.

    Example:
        >>> tile_starts(1000, 512, 64)
        [0, 448, 488]
    """
    if tile <= overlap:
        raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap})")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def ramp(length: int, overlap: int) -> np.ndarray:
    """Blend weights of one tile side: rising over ``overlap`` px at both ends, 1 in between, > 0 everywhere."""
    x = np.arange(length, dtype=np.float32)
    r = max(int(overlap), 1)
    return np.minimum(1.0, np.minimum(x + 1.0, length - x) / (r + 1.0))


def matte_input(image: np.ndarray, trimap: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """ViTMatte's input: ``1×4×H×W`` float32, ``(rgb − mean) / std`` then the trimap channel.

    Args:
        image: ``H×W×3`` RGB in ``[0, 1]``.
        trimap: ``H×W`` in {0, 0.5, 1}.
        mean: per-channel mean of the checkpoint's processor (``image_mean``).
        std: per-channel std (``image_std``).
    """
    import torch

    rgb = (np.asarray(image, np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    x = np.concatenate([rgb, np.asarray(trimap, np.float32)[..., None]], axis=2)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


class VitMatteMatter(PretrainedStage, Matter):
    """Image + trimap → alpha with ViTMatte.

    Args:
        model: hub id (``hustvl/vitmatte-base-composition-1k``, ``…-small-…``,
            ``…-distinctions-646``) or a local folder with the model and its image processor.
        tile: longest side matted in one pass; larger regions are tiled (px).
        overlap: overlap between neighbouring tiles (px).
        context: pixels of context kept around the unknown band's box.
        dtype: ``auto`` (bf16/fp16 on CUDA, fp32 on CPU), ``float32``, ``float16``, ``bfloat16``.

    Example:
        >>> matter = VitMatteMatter().to("cuda")
        >>> alpha = matter(image, trimap)          # H×W float32 in [0, 1]
    """

    key = "matter.model"

    def __init__(self, model: str = "hustvl/vitmatte-base-composition-1k", tile: int = 1024, overlap: int = 128,
                 context: int = 64, dtype: str = "auto") -> None:
        super().__init__(model, dtype)
        if tile < 64 or overlap < 0 or overlap >= tile:
            raise ValueError(f"matter.tile must be >= 64 and matter.overlap in [0, tile); got tile={tile}, overlap={overlap}")
        self.tile = tile
        self.overlap = overlap
        self.context = context

    def _load(self, source: str, kwargs: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
        from transformers import VitMatteForImageMatting, VitMatteImageProcessor

        processor = VitMatteImageProcessor.from_pretrained(source, **kwargs)
        model = VitMatteForImageMatting.from_pretrained(source, dtype=dtype, **kwargs)
        return {"processor": processor, "model": model}

    def __call__(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """Estimate alpha.

        Args:
            image: ``H×W×3`` float32 RGB in ``[0, 1]``.
            trimap: ``H×W`` float with 0 = background, 0.5 = unknown, 1 = foreground.

        Returns:
            ``H×W`` float32 alpha in ``[0, 1]``; equal to the trimap where it is 0 or 1.
        """
        if image.shape[:2] != trimap.shape[:2]:
            raise ValueError(f"image {image.shape[:2]} and trimap {trimap.shape[:2]} must have the same size")
        tri = np.asarray(trimap, np.float32)
        known_fg, known_bg = tri >= 1.0, tri <= 0.0
        alpha = known_fg.astype(np.float32)
        unknown = ~(known_fg | known_bg)
        if not unknown.any():
            return alpha
        h, w = tri.shape
        ys, xs = np.nonzero(unknown)
        c = self.context
        y0, y1 = max(0, ys.min() - c), min(h, ys.max() + 1 + c)
        x0, x1 = max(0, xs.min() - c), min(w, xs.max() + 1 + c)
        alpha[y0:y1, x0:x1] = self.matte_region(image[y0:y1, x0:x1], tri[y0:y1, x0:x1])
        alpha[known_fg] = 1.0
        alpha[known_bg] = 0.0
        return np.clip(alpha, 0.0, 1.0)

    def matte_region(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """Alpha of one region, tiled when its longer side exceeds :attr:`tile` (``H×W`` float32)."""
        h, w = trimap.shape
        if max(h, w) <= self.tile:
            return self.matte_tile(image, trimap)
        th, tw = min(self.tile, h), min(self.tile, w)
        acc = np.zeros((h, w), np.float32)
        weight = np.zeros((h, w), np.float32)
        ramp2d = ramp(th, self.overlap)[:, None] * ramp(tw, self.overlap)[None, :]
        for ty in tile_starts(h, th, self.overlap):
            for tx in tile_starts(w, tw, self.overlap):
                t = trimap[ty:ty + th, tx:tx + tw]
                if ((t > 0.0) & (t < 1.0)).any():
                    a = self.matte_tile(image[ty:ty + th, tx:tx + tw], t)
                else:
                    a = (t >= 1.0).astype(np.float32)
                acc[ty:ty + th, tx:tx + tw] += a * ramp2d
                weight[ty:ty + th, tx:tx + tw] += ramp2d
        return acc / weight

    def matte_tile(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """One network pass: build the 4-channel input, pad to a multiple of 32, predict, crop (``H×W``)."""
        import torch

        from layerkit.ops.latent import crop_to, pad_to_multiple

        parts = self.loaded
        processor, model = parts["processor"], parts["model"]
        x = matte_input(image, trimap, processor.image_mean, processor.image_std)
        x, size = pad_to_multiple(x, int(getattr(processor, "size_divisor", 32) or 32), mode="constant")
        with torch.inference_mode():
            out = model(pixel_values=x.to(self.device, self.torch_dtype)).alphas
        return crop_to(out.float(), size)[0, 0].cpu().numpy()
