"""GrabCut segmentation (OpenCV) from boxes, points and masks; no weights.

Prompts become GrabCut's four labels: outside every box is sure background, inside is
"probably foreground"; a positive point paints a sure-foreground disk, a negative point a
sure-background disk; a mask prompt is used as the object (optionally refined). With points
only, the image frame is sure background and a disk around each positive point probable
foreground. Segmentation runs at ``max_side`` at most and the mask is upsampled.
"""

from __future__ import annotations

import numpy as np

from layerkit.types import Prompt


class GrabCutSegmenter:
    """Image + prompt → binary mask.

    Args:
        iterations: GrabCut iterations.
        max_side: long side the image is downscaled to before segmentation.
        point_radius: radius of the sure-foreground disk around a positive point, as a
            fraction of the image's shorter side (at least 2 px).
        point_region: radius of the "probably foreground" disk around positive points when
            no box is given, as a fraction of the shorter side.
        box_margin: pixels added around each box before it is used (tight boxes clip objects).
        refine_mask: refine a mask prompt with GrabCut instead of using it as given.
        seed: OpenCV RNG seed (GrabCut's GMM initialisation uses k-means).
    """

    def __init__(self, iterations: int = 5, max_side: int = 640, point_radius: float = 0.01, point_region: float = 0.25,
                 box_margin: int = 2, refine_mask: bool = False, seed: int = 0) -> None:
        self.iterations = iterations
        self.max_side = max_side
        self.point_radius = point_radius
        self.point_region = point_region
        self.box_margin = box_margin
        self.refine_mask = refine_mask
        self.seed = seed

    def __call__(self, image: np.ndarray, prompt: Prompt) -> np.ndarray:
        """Segment the object.

        Args:
            image: ``H×W×3`` float in ``[0, 1]``.
            prompt: spatial prompt in this image's pixel coordinates.

        Returns:
            ``H×W`` bool mask.
        """
        import cv2

        h, w = image.shape[:2]
        if prompt.mask is not None and not self.refine_mask and prompt.points is None and prompt.boxes is None:
            return np.asarray(prompt.mask, bool)
        k = min(1.0, self.max_side / max(h, w))
        sw, sh = max(1, round(w * k)), max(1, round(h * k))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if k < 1 else image
        img8 = np.ascontiguousarray(np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)[..., ::-1])
        labels = self.initial_labels(prompt, (sh, sw), k)
        if not ((labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD)).any():
            labels[[0, -1], :] = cv2.GC_BGD
            labels[:, [0, -1]] = cv2.GC_BGD
        fg_like = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
        if not fg_like.any():
            return np.zeros((h, w), bool)
        cv2.setRNGSeed(self.seed)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(img8, labels, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # degenerate colour models (flat image): keep the initial labels
            pass
        mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
        if k < 1:
            mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        return mask

    def initial_labels(self, prompt: Prompt, size: tuple[int, int], k: float) -> np.ndarray:
        """GrabCut label map (``GC_BGD/FGD/PR_BGD/PR_FGD``) at the working size ``(h, w)``."""
        import cv2

        h, w = size
        short = min(h, w)
        if prompt.boxes is not None:
            labels = np.full((h, w), cv2.GC_BGD, np.uint8)
            m = self.box_margin
            for x0, y0, x1, y1 in prompt.boxes * k:
                labels[max(0, int(y0) - m):min(h, int(np.ceil(y1)) + m), max(0, int(x0) - m):min(w, int(np.ceil(x1)) + m)] = cv2.GC_PR_FGD
        else:
            labels = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
            labels[[0, -1], :] = cv2.GC_BGD
            labels[:, [0, -1]] = cv2.GC_BGD
        if prompt.mask is not None:
            msk = cv2.resize(prompt.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            labels[msk] = cv2.GC_PR_FGD
            core = cv2.erode(msk.astype(np.uint8), np.ones((5, 5), np.uint8), iterations=2).astype(bool)
            labels[core] = cv2.GC_FGD
            if prompt.boxes is None:
                far = ~cv2.dilate(msk.astype(np.uint8), np.ones((5, 5), np.uint8), iterations=max(2, short // 40)).astype(bool)
                labels[far] = cv2.GC_BGD
        if prompt.points is not None:
            r = max(2, int(round(self.point_radius * short)))
            region = max(r + 1, int(round(self.point_region * short)))
            pts = np.round(prompt.points * k).astype(int)
            if prompt.boxes is None and prompt.mask is None:
                for (x, y), lab in zip(pts, prompt.labels):  # type: ignore[arg-type]
                    if lab == 1:
                        cv2.circle(labels, (int(x), int(y)), region, int(cv2.GC_PR_FGD), -1)
            for (x, y), lab in zip(pts, prompt.labels):  # type: ignore[arg-type]
                cv2.circle(labels, (int(x), int(y)), r, int(cv2.GC_FGD if lab == 1 else cv2.GC_BGD), -1)
        return labels
