"""The plain public-library chain: what a user would write from the field's libraries in a few lines.

GrabCut (OpenCV) → closed-form matting (pymatting) → Telea inpainting (OpenCV), with no tuning
of layerkit's own. It is the *peer* that ``layerkit eval`` / ``bench`` run beside a config on
real photos, so a number for the default always comes with the number of the obvious
alternative measured in the same run, on the same machine.

Protocol (fixed, so runs are comparable):

* **box** prompt — ``cv2.grabCut(..., rect, GC_INIT_WITH_RECT)``, 5 iterations, at full size;
* **point** prompt — ``GC_INIT_WITH_MASK``: the image frame sure background, every other pixel
  probable background, a disk of 25 % of the shorter side around the point probable foreground
  and a disk of 1 % sure foreground (the same geometry as layerkit's own point prompt);
* **box+point** — the rectangle, plus the point's sure-foreground disk;
* **mask** prompt — the mask as given (no GrabCut);
* trimap: the mask eroded / dilated by ``band`` (1 % of the long side, at least 3 px) — inside
  the eroded mask foreground, outside the dilated one background, the band between unknown;
* ``pymatting.estimate_alpha_cf`` on the trimap, ``pymatting.estimate_foreground_ml`` for the
  foreground colour, ``cv2.inpaint(INPAINT_TELEA, radius 5)`` of the pixels with α > 0.5 for
  the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layerkit.types import Prompt


@dataclass
class ChainResult:
    """Output of :func:`plain_chain`.

    Attributes:
        alpha: ``H×W`` float in ``[0, 1]``.
        foreground: ``H×W×3`` straight colour in ``[0, 1]``.
        background: ``H×W×3`` in ``[0, 1]``, the object inpainted away.
        mask: ``H×W`` bool, GrabCut's mask.
    """

    alpha: np.ndarray
    foreground: np.ndarray
    background: np.ndarray
    mask: np.ndarray


def grabcut_mask(image: np.ndarray, prompt: Prompt, iterations: int = 5, seed: int = 0) -> np.ndarray:
    """Plain OpenCV GrabCut from a box and/or point prompt (see the module docstring).

    Args:
        image: ``H×W×3`` float RGB in ``[0, 1]``.
        prompt: a box, a positive point, both, or a mask.
        iterations: GrabCut iterations.
        seed: OpenCV RNG seed.

    Returns:
        ``H×W`` bool mask (the prompt's own region if GrabCut returns nothing).
    """
    import cv2

    h, w = image.shape[:2]
    if prompt.mask is not None and prompt.boxes is None and prompt.points is None:
        return np.asarray(prompt.mask, bool)
    img8 = np.ascontiguousarray(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)[..., ::-1])
    labels = np.full((h, w), cv2.GC_BGD, np.uint8)
    mode = cv2.GC_INIT_WITH_MASK
    rect = (0, 0, 1, 1)
    short = min(h, w)
    if prompt.boxes is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in prompt.boxes[0])
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(w, max(x1, x0 + 1)), min(h, max(y1, y0 + 1))
        rect = (x0, y0, x1 - x0, y1 - y0)
        mode = cv2.GC_INIT_WITH_RECT
    else:
        labels[1:-1, 1:-1] = cv2.GC_PR_BGD
    if prompt.points is not None:
        if mode == cv2.GC_INIT_WITH_RECT:  # rect + point: build the rect's labels, then add the point
            labels[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]] = cv2.GC_PR_FGD
            mode = cv2.GC_INIT_WITH_MASK
        for (x, y), lab in zip(np.round(prompt.points).astype(int), prompt.labels):  # type: ignore[arg-type]
            if lab == 1 and prompt.boxes is None:
                cv2.circle(labels, (int(x), int(y)), max(3, int(0.25 * short)), int(cv2.GC_PR_FGD), -1)
            cv2.circle(labels, (int(x), int(y)), max(2, int(0.01 * short)), int(cv2.GC_FGD if lab == 1 else cv2.GC_BGD), -1)
    cv2.setRNGSeed(seed)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    region = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    try:
        cv2.grabCut(img8, labels, rect, bgd, fgd, iterations, mode)
    except cv2.error:  # degenerate colour models: keep the prompt's region
        return region if mode == cv2.GC_INIT_WITH_MASK else _rect_mask((h, w), rect)
    mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if not mask.any():
        mask = region if mode == cv2.GC_INIT_WITH_MASK else _rect_mask((h, w), rect)
    return mask


def _rect_mask(shape: tuple[int, int], rect: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros(shape, bool)
    x, y, w, h = rect
    m[y:y + h, x:x + w] = True
    return m


def plain_chain(image: np.ndarray, prompt: Prompt, band: float = 0.01, iterations: int = 5) -> ChainResult:
    """GrabCut → closed-form matting → Telea inpainting (see the module docstring).

    Args:
        image: ``H×W×3`` float RGB in ``[0, 1]``.
        prompt: box / point / mask prompt in pixel coordinates.
        band: half-width of the trimap's unknown band, as a fraction of the long side (≥ 3 px).
        iterations: GrabCut iterations.

    Returns:
        A :class:`ChainResult`.
    """
    import cv2
    from pymatting import estimate_alpha_cf, estimate_foreground_ml

    img = np.asarray(image, np.float64)[..., :3]
    h, w = img.shape[:2]
    mask = grabcut_mask(img, prompt, iterations)
    r = max(3, int(round(band * max(h, w))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    m8 = mask.astype(np.uint8)
    sure_fg = cv2.erode(m8, kernel).astype(bool)
    maybe = cv2.dilate(m8, kernel).astype(bool)
    trimap = np.where(sure_fg, 1.0, np.where(maybe, 0.5, 0.0))
    if sure_fg.any() and (trimap == 0).any():
        alpha = np.clip(estimate_alpha_cf(img, trimap), 0.0, 1.0)
    else:  # a trimap without both known regions has no closed-form solution
        alpha = mask.astype(np.float64)
    fg = np.clip(estimate_foreground_ml(img, alpha), 0.0, 1.0)
    img8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    hole = (alpha > 0.5).astype(np.uint8)
    bg = cv2.inpaint(img8, hole, 5, cv2.INPAINT_TELEA).astype(np.float64) / 255.0
    return ChainResult(alpha, fg, bg, mask)
