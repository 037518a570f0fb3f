"""HFA refiner (LayeringDiff §3.3): trained FAN/BAN nets restore high-frequency detail from the
composite into the decomposed layers, then copy the composite exactly where a layer is fully
visible (``F = C`` where ``α = 1``, ``B = C`` where ``α = 0``).

The nets live in :mod:`layerkit.modules.refiner.hfa_nets`; a checkpoint is written by
``layerkit train hfa`` (``RUN/export/hfa.pt``).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from layerkit.modules.base import Refiner

#: file name of the checkpoint shipped in ``layerkit/weights/`` (used when ``checkpoint`` is None)
SHIPPED_CHECKPOINT = "hfa.pt"


def shipped_checkpoint() -> Path:
    """Path of the HFA checkpoint shipped with the package (it may not exist)."""
    return Path(str(resources.files("layerkit"))) / "weights" / SHIPPED_CHECKPOINT


class HFARefiner(Refiner):
    """(C, α, F̂, B̂) → (F, B) with trained FAN/BAN nets.

    Args:
        checkpoint: an exported HFA checkpoint (``.pt`` from ``layerkit train hfa``); None uses
            the one shipped in ``layerkit/weights/hfa.pt``.
        opaque: alpha at and above which ``F`` is copied from ``C``.
        clear: alpha at and below which ``B`` is copied from ``C``.
        device: torch device the nets run on (the pipeline's ``to`` moves them).

    Example:
        >>> ref = HFARefiner(checkpoint="runs/hfa/export/hfa.pt")
        >>> f, b = ref(image, alpha, f_hat, b_hat)    # H×W×3 float32 each
    """

    def __init__(self, checkpoint: str | None = None, opaque: float = 0.999, clear: float = 0.001,
                 device: str = "cpu") -> None:
        self.checkpoint = checkpoint
        self.opaque = opaque
        self.clear = clear
        self.device = device
        self._nets: tuple[object, object] | None = None
        self.meta: dict = {}

    @property
    def path(self) -> Path:
        """The checkpoint file used."""
        return Path(os.path.expanduser(self.checkpoint)) if self.checkpoint else shipped_checkpoint()

    def missing_weights(self) -> list[str]:
        """One line per missing file (nothing is loaded; no network)."""
        from layerkit.modules.hub import missing_file

        if self.checkpoint:
            return missing_file(self.checkpoint, "refiner.checkpoint", "written by 'layerkit train hfa' as RUN/export/hfa.pt")
        if self.path.is_file():
            return []
        return ["refiner.checkpoint: no HFA checkpoint is shipped with this build; train one with "
                "'layerkit train hfa --set data.fg_dir=FG data.bg_dir=BG' and set refiner.checkpoint=RUN/export/hfa.pt"]

    def to(self, device: str) -> HFARefiner:
        """Run the nets on ``device`` (loaded lazily, moved on first use)."""
        self.device = device
        if self._nets is not None:
            for net in self._nets:
                net.to(device)  # type: ignore[attr-defined]
        return self

    def nets(self) -> tuple[object, object]:
        """``(fan, ban)``, loaded on first use.

        Raises:
            MissingModelError: the checkpoint file does not exist.
            ConfigError: the file is not an HFA checkpoint.
        """
        if self._nets is None:
            from layerkit.modules.refiner.hfa_nets import load_checkpoint

            fan, ban, self.meta = load_checkpoint(self.path)
            self._nets = (fan.to(self.device), ban.to(self.device))
        return self._nets

    def __call__(self, image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                 background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Refine.

        Args:
            image: ``H×W×3`` composite ``C`` in ``[0, 1]``.
            alpha: ``H×W`` matte in ``[0, 1]``.
            foreground: ``H×W×3`` estimated ``F̂``.
            background: ``H×W×3`` estimated ``B̂``.

        Returns:
            ``(F, B)``, ``H×W×3`` float32 in ``[0, 1]``.
        """
        import torch

        from layerkit.modules.refiner.hfa_nets import copy_visible

        if image.ndim != 3 or image.shape[2] != 3 or foreground.shape != image.shape or background.shape != image.shape:
            raise ValueError(f"image, foreground and background must be H×W×3 of one size, got "
                             f"{image.shape}, {foreground.shape}, {background.shape}")
        if alpha.shape != image.shape[:2]:
            raise ValueError(f"alpha must be H×W = {image.shape[:2]}, got {alpha.shape}")
        fan, ban = self.nets()

        def t(x: np.ndarray) -> torch.Tensor:
            x = x[..., None] if x.ndim == 2 else x
            return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))[None].to(self.device)

        c, a = t(image), t(alpha)
        with torch.inference_mode():
            f = copy_visible(fan(c, a, t(foreground)), c, a, "foreground", self.opaque, self.clear)  # type: ignore[operator]
            b = copy_visible(ban(c, a, t(background)), c, a, "background", self.opaque, self.clear)  # type: ignore[operator]

        def n(x: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(x[0].clamp(0, 1).float().cpu().numpy().transpose(1, 2, 0))

        return n(f), n(b)
