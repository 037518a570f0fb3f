"""The interactive-segmentation protocol: a simulated user, NoC@85/90 and IoU after k clicks.

The simulated user (the standard protocol of interactive segmentation benchmarks: GrabCut,
Berkeley, DAVIS evaluations) looks at the current mask, finds the largest error region — a
connected part of missed object (false negative) or of wrong background (false positive) — and
clicks at its interior point (the pixel farthest from the region's edge, the image border
counting as edge): a positive click on missed object, a negative click on wrong background. It
stops after ``max_clicks`` clicks. NoC@T is the number of clicks needed to reach mask IoU ``T``
(``max_clicks`` when never reached).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from layerkit.app.interactive import Click

#: ``(image, clicks, current mask or None) → new mask``
ClickSegmenter = Callable[[np.ndarray, Sequence[Click], "np.ndarray | None"], np.ndarray]


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two ``H×W`` bool masks (1.0 when both are empty)."""
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


def next_click(pred: np.ndarray, gt: np.ndarray) -> Click | None:
    """The simulated user's next click on ``pred`` (``H×W`` bool) given ``gt``; None if perfect.

    Returns:
        A positive click inside the largest missed region, or a negative one inside the largest
        wrong-background region, at that region's interior point.
    """
    import cv2

    best: tuple[int, np.ndarray, bool] | None = None
    for err, positive in ((gt & ~pred, True), (pred & ~gt, False)):
        if not err.any():
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats(err.astype(np.uint8), connectivity=8)
        i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[i, cv2.CC_STAT_AREA])
        if best is None or area > best[0]:
            best = (area, comp == i, positive)
    if best is None:
        return None
    region = np.pad(best[1], 1).astype(np.uint8)  # the image border counts as the region's edge
    dist = cv2.distanceTransform(region, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return Click(float(x), float(y), best[2])


@dataclass
class Trace:
    """One simulated session: IoU after each click and the clicks given."""

    ious: list[float] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def noc(self, threshold: float) -> int:
        """Clicks needed to reach ``threshold`` IoU (the number of clicks given when never reached)."""
        for i, v in enumerate(self.ious):
            if v >= threshold:
                return i + 1
        return len(self.ious)

    def iou_at(self, k: int) -> float:
        """IoU after ``k`` clicks (the last one when the user stopped earlier at a perfect mask)."""
        return self.ious[min(k, len(self.ious)) - 1]


def simulate(segment: ClickSegmenter, image: np.ndarray, gt: np.ndarray, max_clicks: int = 20,
             stop_at: float | None = None, min_clicks: int = 5) -> Trace:
    """Run the simulated user against ``segment`` on one image.

    Args:
        segment: click-driven segmenter (see :data:`ClickSegmenter`).
        image: ``H×W×3`` float32 in ``[0, 1]``.
        gt: ``H×W`` bool ground-truth object mask.
        max_clicks: clicks at most.
        stop_at: stop early once this IoU is reached after at least ``min_clicks`` clicks
            (None: always ``max_clicks`` clicks); later IoUs count as the last one.
        min_clicks: see ``stop_at``.

    Returns:
        :class:`Trace` with one IoU per click.
    """
    import time

    trace = Trace()
    mask: np.ndarray | None = None
    pred = np.zeros(gt.shape, bool)
    for _ in range(max_clicks):
        click = next_click(pred, gt)
        if click is None:
            break
        trace.clicks.append(click)
        t0 = time.perf_counter()
        mask = np.asarray(segment(image, list(trace.clicks), mask), bool)
        trace.seconds.append(time.perf_counter() - t0)
        pred = mask
        trace.ious.append(mask_iou(pred, gt))
        if stop_at is not None and trace.ious[-1] >= stop_at and len(trace.ious) >= min_clicks:
            break
    return trace


def summarise(traces: Sequence[Trace], thresholds: Sequence[float] = (0.85, 0.90),
              at: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """Mean NoC@T per threshold, mean IoU after each ``k`` in ``at``, and the failure rate at 90 %."""
    out: dict[str, float] = {}
    for t in thresholds:
        out[f"NoC@{round(t * 100)}"] = float(np.mean([tr.noc(t) for tr in traces]))
    for k in at:
        out[f"IoU@{k}"] = float(np.mean([tr.iou_at(k) for tr in traces]))
    out["fail@90"] = float(np.mean([max(tr.ious) < 0.90 for tr in traces]))
    return out
