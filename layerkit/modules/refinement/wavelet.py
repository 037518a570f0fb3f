"""Weight-free high-frequency alignment (the HFA rule without nets).

Estimated layers are smooth where they were solved or inpainted; the composite ``C`` holds
the true detail wherever a layer is visible. This refiner

1. copies ``C`` exactly into ``F`` where ``α = 1`` and into ``B`` where ``α = 0``;
2. in the soft band, replaces the layers' Haar high-frequency bands with ``C``'s, weighted by
   how visible the layer is there (``α`` for ``F``, ``1 − α`` for ``B``), over ``levels``
   scales.
"""

from __future__ import annotations

import numpy as np
import torch

from layerkit.ops.haar import wavedec, waverec


class WaveletRefiner:
    """(C, α, F̂, B̂) → (F, B) with composite detail restored.

    Args:
        levels: Haar levels whose high bands are transferred.
        opaque: alpha at and above which ``F`` is copied from ``C``.
        clear: alpha at and below which ``B`` is copied from ``C``.
    """

    def __init__(self, levels: int = 2, opaque: float = 0.999, clear: float = 0.001) -> None:
        self.levels = levels
        self.opaque = opaque
        self.clear = clear

    def __call__(self, image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                 background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Refine.

        Args:
            image: ``H×W×3`` composite.
            alpha: ``H×W`` matte.
            foreground: ``H×W×3`` estimated ``F̂``.
            background: ``H×W×3`` estimated ``B̂``.

        Returns:
            ``(F, B)`` ``H×W×3`` float32 in ``[0, 1]``.
        """
        a = alpha[..., None].astype(np.float32)
        f = transfer_high_frequencies(foreground, image, a, self.levels)
        b = transfer_high_frequencies(background, image, 1.0 - a, self.levels)
        f = np.where(a >= self.opaque, image, f)
        b = np.where(a <= self.clear, image, b)
        return np.clip(f, 0, 1).astype(np.float32), np.clip(b, 0, 1).astype(np.float32)


def transfer_high_frequencies(target: np.ndarray, source: np.ndarray, weight: np.ndarray, levels: int) -> np.ndarray:
    """Blend ``source``'s Haar high bands into ``target``'s with per-pixel ``weight`` in ``[0, 1]``.

    Args:
        target: ``H×W×3`` image whose detail is replaced.
        source: ``H×W×3`` image giving the detail.
        weight: ``H×W×1`` weight (1 = take ``source``'s detail).
        levels: number of Haar levels.
    """
    if levels <= 0:
        return target
    t = torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1)))[None].float()
    s = torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1)))[None].float()
    w = torch.from_numpy(np.ascontiguousarray(weight.transpose(2, 0, 1)))[None].float()
    lt, ht, size = wavedec(t, levels)
    _, hs, _ = wavedec(s, levels)
    m = 2 ** levels
    wk = torch.nn.functional.pad(w, (0, (-w.shape[-1]) % m, 0, (-w.shape[-2]) % m), mode="replicate")
    out_h = []
    for h_t, h_s in zip(ht, hs):
        wk = torch.nn.functional.avg_pool2d(wk, 2)
        out_h.append(h_t + wk[:, :, None] * (h_s - h_t))
    return waverec(lt, out_h, size)[0].numpy().transpose(1, 2, 0)
