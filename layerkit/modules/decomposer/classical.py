"""Classical F/B decomposition: foreground colour estimation + background inpainting.

1. Multilevel foreground/background estimation (Germer et al. 2020, pymatting) gives smooth
   ``F`` and ``B`` that satisfy ``C ≈ αF + (1 − α)B`` in the soft band.
2. Where the object hides the background (``α ≥ hole_alpha``) ``B`` is completed by an
   inpainting method (:mod:`layerkit.ops.inpainting`), using the visible
   background (``α ≤ hole_alpha``, with ``B`` from step 1) as its source.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from layerkit.modules.base import Decomposer
from layerkit.ops.inpainting import inpaint
from layerkit.types import Prompt


class ClassicalDecomposer(Decomposer):
    """Image + alpha → (F, B) without weights.

    Args:
        inpaint_method: background completion method (see ``inpaint.METHODS``).
        hole_alpha: alpha at and above which the background counts as hidden and is inpainted.
        hole_dilate: pixels the hole is grown by before inpainting (hides fringe colours).
        fg_regularization: smoothness weight of the foreground estimation.
    """

    def __init__(self, inpaint_method: str = "harmonic", hole_alpha: float = 0.5, hole_dilate: int = 1,
                 fg_regularization: float = 1e-5) -> None:
        self.inpaint_method = inpaint_method
        self.hole_alpha = hole_alpha
        self.hole_dilate = hole_dilate
        self.fg_regularization = fg_regularization

    def __call__(self, image: np.ndarray, alpha: np.ndarray, prompt: Prompt | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Decompose.

        Args:
            image: ``H×W×3`` composite in ``[0, 1]``.
            alpha: ``H×W`` matte.
            prompt: unused (kept for the role's interface).

        Returns:
            ``(F, B)``, each ``H×W×3`` float32; ``B`` is complete (hidden part filled).
        """
        import cv2
        from pymatting import estimate_foreground_ml

        a64 = alpha.astype(np.float64)
        with contextlib.redirect_stdout(io.StringIO()):
            fg, bg = estimate_foreground_ml(image.astype(np.float64), a64, regularization=self.fg_regularization,
                                            return_background=True)
        fg, bg = fg.astype(np.float32), bg.astype(np.float32)
        hole = alpha >= self.hole_alpha
        if self.hole_dilate > 0 and hole.any():
            k = 2 * self.hole_dilate + 1
            hole = cv2.dilate(hole.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
        if hole.all():  # nothing visible to fill from: keep the estimation's smooth background
            return np.clip(fg, 0, 1), np.clip(bg, 0, 1)
        visible_bg = np.where((alpha <= 0)[..., None], image, bg)
        bg = inpaint(visible_bg, hole, self.inpaint_method, seed=self.seed)
        return np.clip(fg, 0, 1), np.clip(bg, 0, 1)
