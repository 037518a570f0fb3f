"""GrabCut segmentation (OpenCV) from boxes, points and masks; no weights.

Prompts become GrabCut's four labels: outside every box is sure background, inside is
"probably foreground"; a positive point paints a sure-foreground disk, a negative point a
sure-background disk; a mask prompt is used as the object (optionally refined). With points
only, the image frame is sure background, a disk around each positive point probable
foreground, and only the mask's parts connected to a positive point are kept; with a box, points
are corrections and every part inside the box stays. Segmentation runs at ``max_side`` at most and the mask is upsampled.

Plain GrabCut starts its foreground colour model from the whole box, so background inside the
box that is rare outside it (a brick wall behind a toilet) is learnt as foreground and kept.
With box prompts this segmenter therefore runs several *initialisations* (``inits``) and keeps
the result whose foreground colours differ most from the ring of background around it:

* ``box`` — classic GrabCut: the whole box is probable foreground;
* ``histogram`` — box pixels whose colour is more frequent outside the box than inside start
  as probable background;
* ``center`` — box pixels outside a centred ellipse (``center_radius`` of the half-sides) start
  as probable background (objects are centred in their boxes);
* ``core`` — the same with the smaller ``core_radius``: it frees a background band that crosses
  the whole box (water behind a flying heron), which the two above keep as foreground.
* ``frame`` — ``center`` anchored at box sides on the image frame (run only when a box reaches
  it; ``frame_anchor``, the shipped setting, anchors ``center`` / ``core`` themselves: :mod:`.grabcut_parts`).

After the vote, large parts that another hypothesis keeps and the chosen one drops are restored
when their colours are foreign to the known background (``restore_parts``, see
:func:`~layerkit.modules.segmenter.grabcut_parts.restore_dropped_parts`): on 12 real photos
(box prompts) the two take α SAD from 27.6 to 17.6; composites unchanged (docs/benchmarks.md).
Background that enters the box across a side and continues the colour just outside it starts the
``histogram`` run as sure background (``side_band``, see
:func:`~layerkit.modules.segmenter.grabcut_parts.continued_background`): real photos 17.6 → 15.5,
dev30 composites 6.19 → 6.12. ``box_margin`` stops one pixel short of the image frame where the box
does (``frame_gap``): a doll's box 2 px below the top edge keeps that sky as known background (real
photos soft-IoU 0.908 → 0.919; no dev30 box changes). With points only, ``point_select`` (on in ``classical``)
segments the click at several working sizes and keeps the largest mask that the box path gives back
(:mod:`.click_select`; real photos, one click: α SAD 69.9 → 42.4).

On the 30 dev composites this lowers the mask error (pixels differing from GT α > 0.5, /1000)
from 10.2 (``box``) to 6.9 (``histogram`` + ``center``); see docs/benchmarks.md. The
initialisations are independent GrabCut runs, so they run in ``threads`` threads (OpenCV
releases the GIL). If every initialisation loses the object, plain ``box`` GrabCut runs, and if
that also comes back empty the prompt's own region is returned: a valid prompt always yields a
mask. Enclosed holes whose colours the known background lacks are filled (``fill_holes``)."""

from __future__ import annotations

import numpy as np

from layerkit.modules.base import Segmenter
from layerkit.modules.segmenter.box_sides import segment_cut_box
from layerkit.modules.segmenter.click_select import locate_click, resegment_box, select_click_mask
from layerkit.modules.segmenter.grabcut_parts import (
    background_separation,
    centred_ellipse,
    colour_separation,
    continued_background,
    fill_foreign_holes,
    keep_pointed_components,
    outside_ratio,
    restore_dropped_parts,
    touches_frame,
)
from layerkit.types import Prompt

__all__ = ["GrabCutSegmenter", "INITS", "background_separation", "centred_ellipse", "colour_separation",
           "fill_foreign_holes", "keep_pointed_components", "outside_ratio", "restore_dropped_parts", "touches_frame"]


class GrabCutSegmenter(Segmenter):
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
        inits: initialisations tried with box prompts (``box``, ``histogram``, ``center``,
            ``core``); the one with the best foreground/background colour separation wins (see ``_best_of``).
        center_radius: relative radius of the ``center`` ellipse.
        core_radius: relative radius of the ``core`` ellipse.
        threads: initialisations run at once (1 = one after the other).
        fill_holes: enclosed holes whose colours differ from the known background by more than
            this (``1 −`` histogram intersection, see :func:`fill_foreign_holes`) are filled;
            0 fills every small hole, 1 none.
        max_hole: holes larger than this fraction of the mask are never filled.
        min_cover: an initialisation whose mask covers less of the prompt region than this
            fraction has lost the object (a speck separates perfectly from its ring) and is
            not chosen while another covers more.
        background_weight: weight of the separation from the *known* background (the sure
            background outside the boxes) in the selection score, beside the separation from
            the mask's own ring (see ``_best_of``); 0 scores by the ring alone.
        restore_parts: a part that another initialisation keeps and the chosen mask drops is
            added back when it touches the chosen mask, covers at least ``min_part`` of it and its
            colours differ from the known background by more than this (``1 −`` histogram
            intersection, see :func:`restore_dropped_parts`); 1 restores nothing.
        min_part: the smallest part restored, as a fraction of the chosen mask's area.
        restore_tolerance: a part is restored only if the mask with it separates from its ring
            (:func:`colour_separation`) at most this much worse than without it.
        frame_anchor: anchor the ``center`` and ``core`` ellipses at the box sides that lie on
            the image frame (see :func:`centred_ellipse`) instead of centring them in the box.
        point_max_side: working long side for prompts of points only (None: ``max_side``).
            ``point_select`` tries several sizes instead. The app's first click leaves both off
            (``layerkit.app.interactive.click_segmenter``).
        side_band: background that enters the box across a side (not on the frame) and continues
            the colour just outside it, up to this fraction of the box's size deep, starts the
            ``histogram`` run as sure background (:func:`continued_background`); 0 turns it off.
        side_tol: largest RGB distance (``[0, 1]`` units) from the colour outside the side.
        point_select: with points only, working long sides to segment the click at; the largest mask
            the box path gives back (IoU >= ``point_select_iou``) is taken, through the box path
            (:func:`~layerkit.modules.segmenter.click_select.select_click_mask`); empty: off.
        frame_gap: a box side that leaves at least one working pixel between it and the image frame
            keeps one pixel of sure background there: ``box_margin`` does not swallow the only strip of
            background the user left on that side (see :meth:`_margined`). ``classical`` turns it on.
        cut_sides: a box side the object crosses (a box that cuts the object) is found when this share of
            the band beyond it is object-coloured, and the image is cropped there (:mod:`.box_sides`); 0 off.

    GrabCut's GMM initialisation uses k-means: OpenCV's RNG is seeded with :attr:`seed` (the
    pipeline's ``pipeline.seed``, see :meth:`~layerkit.modules.base.Stage.manual_seed`).
    """

    def __init__(self, iterations: int = 5, max_side: int = 640, point_radius: float = 0.01, point_region: float = 0.25,
                 box_margin: int = 2, refine_mask: bool = False, inits: tuple[str, ...] = ("histogram", "center", "core"),
                 center_radius: float = 0.6, core_radius: float = 0.45, threads: int = 2, fill_holes: float = 0.7,
                 max_hole: float = 0.06, min_cover: float = 0.02, background_weight: float = 0.0,
                 restore_parts: float = 1.0, min_part: float = 0.05, restore_tolerance: float = 0.02,
                 frame_anchor: bool = False, point_max_side: int | None = None, side_band: float = 0.0,
                 side_tol: float = 0.06,
                 frame_gap: bool = False, cut_sides: float = 0.0, point_select: tuple[int, ...] = (),
                 point_select_iou: float = 0.8) -> None:
        if any(int(v) < 16 for v in point_select) or not 0.0 < point_select_iou <= 1.0:
            raise ValueError(f"segmenter.point_select must list working sizes >= 16 px and segmenter.point_select_iou "
                             f"be in (0, 1]; got {list(point_select)}, {point_select_iou}")
        self.point_select, self.point_select_iou = tuple(int(v) for v in point_select), point_select_iou
        if not 0.0 <= cut_sides <= 1.0:
            raise ValueError(f"segmenter.cut_sides must be in [0, 1], got {cut_sides}")
        self.cut_sides = cut_sides
        unknown = set(inits) - set(INITS)
        if unknown or not inits:
            raise ValueError(f"segmenter.inits must be a non-empty list of {', '.join(INITS)}; got {list(inits)}")
        self.inits = tuple(inits)
        if threads < 1:
            raise ValueError(f"segmenter.threads must be >= 1, got {threads}")
        if not 0.0 <= fill_holes <= 1.0 or not 0.0 <= max_hole <= 1.0:
            raise ValueError(f"segmenter.fill_holes and segmenter.max_hole must be in [0, 1]; got {fill_holes}, {max_hole}")
        if not 0.0 <= min_cover < 1.0:
            raise ValueError(f"segmenter.min_cover must be in [0, 1), got {min_cover}")
        if background_weight < 0.0:
            raise ValueError(f"segmenter.background_weight must be >= 0, got {background_weight}")
        self.background_weight = background_weight
        if not 0.0 <= restore_parts <= 1.0 or not 0.0 < min_part <= 1.0:
            raise ValueError(f"segmenter.restore_parts must be in [0, 1] and segmenter.min_part in (0, 1]; "
                             f"got {restore_parts}, {min_part}")
        self.restore_parts = restore_parts
        self.min_part = min_part
        self.restore_tolerance = restore_tolerance
        self.frame_anchor = frame_anchor
        self.point_max_side = point_max_side
        if not 0.0 <= side_band < 0.5 or side_tol < 0.0:
            raise ValueError(f"segmenter.side_band must be in [0, 0.5) and segmenter.side_tol >= 0; got {side_band}, {side_tol}")
        self.side_band = side_band
        self.side_tol = side_tol
        self.frame_gap = frame_gap
        self.fill_holes = fill_holes
        self.max_hole = max_hole
        self.min_cover = min_cover
        self.center_radius = center_radius
        self.core_radius = core_radius
        self.threads = threads
        self.iterations = iterations
        self.max_side = max_side
        self.point_radius = point_radius
        self.point_region = point_region
        self.box_margin = box_margin
        self.refine_mask = refine_mask

    def predict(self, prompt: Prompt) -> np.ndarray:
        """Segment the object in the image of :meth:`set_image` (``H×W×3`` float in ``[0, 1]``).

        Args:
            prompt: spatial prompt in this image's pixel coordinates.

        Returns:
            ``H×W`` bool mask.
        """
        only_points = prompt.points is not None and prompt.boxes is None and prompt.mask is None
        if self.point_select and only_points:
            long_side = max(self.image.shape[:2])
            sides = list(dict.fromkeys(min(v, long_side) for v in self.point_select))  # sizes past the image: one run
            mask, box, _ = select_click_mask(lambda p, s: self._segment(p, side=s), lambda p: self._segment(p, side_band=False),
                                             prompt, sides, min_iou=self.point_select_iou)
            on_region = lambda im, p: self._segment(p, image=im)  # noqa: E731
            return (locate_click(on_region, self.image, mask, prompt) if box is None
                    else resegment_box(on_region, self.image, mask, box, prompt))
        return self._segment(prompt)

    def _segment(self, prompt: Prompt, side_band: bool = True, image: np.ndarray | None = None,
                 side: int | None = None) -> np.ndarray:
        """One segmentation of ``prompt`` (see :meth:`predict`); ``side_band`` False: no side runs (derived boxes);
        ``side``: the working long side (default ``max_side``, or ``point_max_side`` for points only)."""
        import cv2

        if image is None and self.cut_sides > 0 and side_band and prompt.boxes is not None and len(prompt.boxes) == 1 \
                and prompt.mask is None:  # a box that cuts the object (box_sides.py)
            mask = segment_cut_box(lambda im, p: self._segment(p, side_band, im), self.image, prompt, self.cut_sides)
            if mask is not None:
                return mask
        image = self.image if image is None else image
        h, w = image.shape[:2]
        if prompt.mask is not None and not self.refine_mask and prompt.points is None and prompt.boxes is None:
            return np.asarray(prompt.mask, bool)
        only_points = prompt.points is not None and prompt.boxes is None and prompt.mask is None
        if side is None:
            side = self.point_max_side if only_points and self.point_max_side else self.max_side
        k = min(1.0, side / max(h, w))
        sw, sh = max(1, round(w * k)), max(1, round(h * k))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if k < 1 else image
        img8 = np.ascontiguousarray(np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)[..., ::-1])
        labels = self.initial_labels(prompt, (sh, sw), k)
        band = None  # background runs entering the box across its sides: sure background for `histogram`
        if side_band and self.side_band > 0 and prompt.boxes is not None and prompt.mask is None:
            band = np.zeros(labels.shape, bool)
            for box in prompt.boxes * k:
                band |= continued_background(small, np.array(self._margined(box, labels.shape), float), self.side_band,
                                             self.side_tol)
            band &= labels == cv2.GC_PR_FGD
        if not ((labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD)).any():
            labels[[0, -1], :] = cv2.GC_BGD
            labels[:, [0, -1]] = cv2.GC_BGD
        inits = self.inits if prompt.boxes is not None else ("box",)
        boxes = prompt.boxes * k if prompt.boxes is not None else None
        mask = self._best_of(img8, small, labels, inits, boxes, band)
        if self.fill_holes < 1.0 and mask.any():
            mask = fill_foreign_holes(small, mask, labels == cv2.GC_BGD, self.fill_holes, self.max_hole)
        if not mask.any() and inits != ("box",):
            mask = self._grabcut(img8, labels)
        if not mask.any():  # GrabCut lost the object: fall back on the prompt's own region
            mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
        if prompt.points is not None and prompt.boxes is None:  # with a box, points are corrections, not the object
            mask = keep_pointed_components(mask, prompt.points * k, prompt.labels)  # type: ignore[arg-type]
        if not mask.any():
            return np.zeros((h, w), bool)
        if k < 1:
            mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        return mask

    def _best_of(self, img8: np.ndarray, small: np.ndarray, labels: np.ndarray, inits: tuple[str, ...],
                 boxes: np.ndarray | None, band: np.ndarray | None = None) -> np.ndarray:
        """Run GrabCut from each initialisation; keep the mask with the best colour separation.

        The score is the separation from the ring around the mask (:func:`colour_separation`)
        plus ``background_weight`` × the separation from the known background, the
        sure-background pixels outside the boxes (:func:`background_separation`). The second
        term asks the kept colours to be unlike the background the prompt vouches for; it was
        in the default until a held-out set showed it choosing worse (docs/benchmarks.md:
        120 composites, seed 1, α SAD 6.55 with it, 5.92 without; dev30 unchanged).

        ``band`` (``H×W`` bool or None): background entering the box across its sides
        (:func:`continued_background`), made sure background for the ``histogram`` run only — the
        one that learns box background rarer outside the box as object; the ellipse runs already
        start the box's rim as background.
        """
        import cv2

        known_bg = labels == cv2.GC_BGD
        if boxes is not None and "frame" in inits and len(inits) > 1 and \
                not any(touches_frame(b, labels.shape) for b in boxes):
            inits = tuple(i for i in inits if i != "frame")  # the same ellipse as "center": not run twice

        def run(init: str) -> tuple[np.ndarray, float]:
            lab = labels
            if band is not None and init == "histogram" and band.any():
                lab = labels.copy()
                lab[band] = cv2.GC_BGD
            mask = self._grabcut(img8, self.initialise(lab, init, small, boxes))
            if len(inits) == 1:
                return mask, 0.0
            score = colour_separation(small, mask)
            if self.background_weight:
                score += self.background_weight * background_separation(small, mask, known_bg)
            return mask, score

        if self.threads > 1 and len(inits) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.threads, len(inits))) as pool:
                results = list(pool.map(run, inits))
        else:
            results = [run(init) for init in inits]
        scores = [score for _, score in results]
        region = max(int(((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).sum()), 1)
        covers = [mask.sum() / region for mask, _ in results]
        if max(covers) >= self.min_cover:  # a speck is not the boxed object
            scores = [sc if cv >= self.min_cover else -np.inf for sc, cv in zip(scores, covers)]
        best = int(np.argmax(scores))
        chosen = results[best][0]
        if self.restore_parts < 1.0 and len(results) > 1 and chosen.any():
            others = [m for i, (m, _) in enumerate(results) if i != best and covers[i] >= self.min_cover]
            chosen = restore_dropped_parts(small, chosen, others, known_bg, self.restore_parts, self.min_part,
                                           self.restore_tolerance)
        return chosen

    def _grabcut(self, img8: np.ndarray, labels: np.ndarray) -> np.ndarray:
        import cv2

        labels = labels.copy()
        if not ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).any():
            return np.zeros(labels.shape, bool)
        cv2.setRNGSeed(self.seed)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(img8, labels, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # degenerate colour models (flat image): keep the initial labels
            pass
        return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)

    def initialise(self, labels: np.ndarray, init: str, image: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
        """Apply an initialisation (see the module docstring) to a prompt label map.

        Only "probably foreground" pixels inside the boxes change; sure labels from points and
        masks are kept.
        """
        import cv2

        out = labels.copy()
        if init == "box" or boxes is None:
            return out
        probable = out == cv2.GC_PR_FGD
        if init == "histogram":
            outside = (out == cv2.GC_BGD) | (out == cv2.GC_PR_BGD)
            if outside.any():
                out[probable & (outside_ratio(image, ~outside) > 1.0)] = cv2.GC_PR_BGD
        elif init in ("center", "core", "frame"):
            radius = self.core_radius if init == "core" else self.center_radius
            h, w = out.shape
            yy, xx = np.mgrid[:h, :w].astype(np.float32)
            inside = np.zeros((h, w), bool)
            for box in boxes:
                inside |= centred_ellipse(box, (h, w), radius, xx, yy, anchor=init == "frame" or self.frame_anchor)
            out[probable & ~inside] = cv2.GC_PR_BGD
        if not ((out == cv2.GC_FGD) | (out == cv2.GC_PR_FGD)).any():
            return labels.copy()
        return out

    def _margined(self, box: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """Integer extent ``(x0, y0, x1, y1)`` (exclusive ends) of ``box`` plus ``box_margin``, clipped to ``size``.

        With ``frame_gap``, a side that leaves at least one pixel between it and the image frame keeps
        one: the margin does not swallow the only strip of background the user left on that side.
        """
        h, w = size
        m = self.box_margin
        bx0, by0, bx1, by1 = int(box[0]), int(box[1]), int(np.ceil(box[2])), int(np.ceil(box[3]))
        g = 1 if self.frame_gap else 0
        x0 = max(g if bx0 >= 1 else 0, bx0 - m)
        y0 = max(g if by0 >= 1 else 0, by0 - m)
        x1 = min(w - g if bx1 <= w - 1 else w, bx1 + m)
        y1 = min(h - g if by1 <= h - 1 else h, by1 + m)
        return x0, y0, x1, y1

    def initial_labels(self, prompt: Prompt, size: tuple[int, int], k: float) -> np.ndarray:
        """GrabCut label map (``GC_BGD/FGD/PR_BGD/PR_FGD``) at the working size ``(h, w)``."""
        import cv2

        h, w = size
        short = min(h, w)
        if prompt.boxes is not None:
            labels = np.full((h, w), cv2.GC_BGD, np.uint8)
            for box in prompt.boxes * k:
                x0, y0, x1, y1 = self._margined(box, (h, w))
                labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
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


INITS = ("box", "histogram", "center", "core", "frame")
