"""Closed-form matting (Levin et al. 2008) through pymatting.

Only the trimap's unknown pixels are solved; the image is cropped to the unknown band's box
first, and matting runs at most at ``max_side`` pixels on the long side (the alpha is
upsampled with a guided filter beyond that), so the cost follows the band, not the photo.
"""

from __future__ import annotations

import numpy as np

from layerkit.errors import PromptError
from layerkit.modules.base import Matter


class ClosedFormMatter(Matter):
    """Image + trimap → alpha.

    Args:
        epsilon: regularisation of the matting Laplacian.
        radius: window radius of the matting Laplacian.
        max_side: largest long side matted at full resolution; larger crops are matted
            downscaled and upsampled with a guided filter.
        cg_tolerance: relative tolerance of the conjugate-gradient solve.
    """

    def __init__(self, epsilon: float = 1e-7, radius: int = 1, max_side: int = 1600, cg_tolerance: float = 1e-7) -> None:
        self.epsilon = epsilon
        self.radius = radius
        self.max_side = max_side
        self.cg_tolerance = cg_tolerance

    def __call__(self, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """Solve the matte.

        Args:
            image: ``H×W×3`` float in ``[0, 1]``.
            trimap: ``H×W`` with 0 (background), 1 (foreground), other values unknown.

        Returns:
            ``H×W`` float32 alpha in ``[0, 1]``.

        Raises:
            PromptError: the trimap has no sure-foreground or no sure-background pixel.
        """
        fg, bg = trimap >= 0.99, trimap <= 0.01
        if not fg.any():
            raise PromptError("the trimap has no sure-foreground pixel; the object is too small or the prompt misses it")
        if not bg.any():
            raise PromptError("the trimap has no sure-background pixel; the prompt covers the whole image region")
        alpha = fg.astype(np.float32)
        unknown = ~(fg | bg)
        if not unknown.any():
            return alpha
        ys, xs = np.nonzero(unknown)
        pad = 2 * self.radius + 2
        h, w = trimap.shape
        y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + 1 + pad)
        x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + 1 + pad)
        img, tri = image[y0:y1, x0:x1], trimap[y0:y1, x0:x1]
        sub = _solve(img, tri, self.epsilon, self.radius, self.max_side, self.cg_tolerance)
        region = alpha[y0:y1, x0:x1]
        un = unknown[y0:y1, x0:x1]
        region[un] = sub[un]
        return np.clip(alpha, 0.0, 1.0)


def _solve(img: np.ndarray, tri: np.ndarray, eps: float, radius: int, max_side: int, tol: float) -> np.ndarray:
    import cv2
    h, w = tri.shape
    k = min(1.0, max_side / max(h, w))
    if k < 1.0:
        size = (max(2, round(w * k)), max(2, round(h * k)))
        small_img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        small_tri = cv2.resize(tri, size, interpolation=cv2.INTER_NEAREST)
        small = _solve(small_img, small_tri, eps, radius, max_side, tol)
        up = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return _guided(img, up)
    import contextlib
    import io

    from pymatting import estimate_alpha_cf

    with contextlib.redirect_stdout(io.StringIO()):  # pymatting prints preconditioner warnings
        a = estimate_alpha_cf(img.astype(np.float64), tri.astype(np.float64),
                              laplacian_kwargs={"epsilon": eps, "radius": radius}, cg_kwargs={"rtol": tol})
    return np.clip(a, 0.0, 1.0).astype(np.float32)


def _guided(img: np.ndarray, p: np.ndarray, r: int = 8, eps: float = 1e-4) -> np.ndarray:
    """Gray guided filter (He et al.) to upsample a matte along image edges."""
    import cv2

    I = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2GRAY)  # noqa: E741 - the guided filter's I
    box = lambda x: cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1))  # noqa: E731
    mI, mp = box(I), box(p)
    a = (box(I * p) - mI * mp) / (box(I * I) - mI * mI + eps)
    b = mp - a * mI
    return np.clip(box(a) * I + box(b), 0.0, 1.0).astype(np.float32)
