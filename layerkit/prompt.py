"""The prompt: which object a decomposition is about (points, boxes, mask, text, any mix).

:class:`Prompt` normalises and checks what a user gives (pixels, ``x`` right and ``y`` down;
boxes ``xyxy`` with exclusive ends; points ``xy`` with labels 1 = object, 0 = not object).
It is re-exported by :mod:`layerkit.types` with the rest of the data model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from layerkit.errors import PromptError


@dataclass
class Prompt:
    """What to extract: points, boxes, a mask, a text phrase, or any mix of them.

    Args:
        points: ``N×2`` pixel coordinates ``(x, y)``.
        labels: ``N`` point labels, 1 = on the object (default), 0 = not on the object.
        boxes: ``M×4`` boxes ``(x0, y0, x1, y1)`` in pixels, ``x1, y1`` exclusive.
        mask: ``H×W`` bool or float in ``[0, 1]`` (>= 0.5 counts as object), canvas size.
        text: a phrase naming the object ("the white horse"); needs a grounding stage.

    Example:
        >>> Prompt(boxes=[[120, 40, 380, 500]])
        >>> Prompt(points=[[250, 260], [30, 30]], labels=[1, 0])
        >>> Prompt(text="the dog", points=[[310, 220]])
    """

    points: np.ndarray | Sequence[Sequence[float]] | None = None
    labels: np.ndarray | Sequence[int] | None = None
    boxes: np.ndarray | Sequence[Sequence[float]] | None = None
    mask: np.ndarray | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.points is not None:
            pts = _numbers(self.points, "points", "N×2 (x, y) pixel coordinates such as [[250, 260]]")
            if pts.size == 0:
                pts = pts.reshape(0, 2)
            if pts.ndim == 1 and pts.shape[0] == 2:
                pts = pts[None]
            if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
                raise PromptError(f"points must be N×2 finite (x, y) pixel coordinates, got shape {pts.shape}")
            self.points = pts
            raw = np.ones(len(pts)) if self.labels is None else _numbers(self.labels, "labels", "0 or 1 per point").reshape(-1)
            if raw.shape != (len(pts),) or not np.isin(raw, (0, 1)).all():
                raise PromptError(f"labels must be {len(pts)} values of 0 (background) or 1 (object), got {raw.tolist()}")
            self.labels = raw.astype(np.int64)
            if len(pts) == 0:
                self.points, self.labels = None, None
        elif self.labels is not None:
            raise PromptError("labels were given without points")
        if self.boxes is not None:
            b = _numbers(self.boxes, "boxes", "M×4 (x0, y0, x1, y1) pixel boxes such as [[120, 40, 380, 500]]")
            if b.ndim == 1 and b.shape[0] == 4:
                b = b[None]
            if b.ndim != 2 or b.shape[1] != 4 or not np.isfinite(b).all():
                raise PromptError(f"boxes must be M×4 finite (x0, y0, x1, y1) pixel boxes, got shape {b.shape}")
            for x0, y0, x1, y1 in b:
                if x1 <= x0 or y1 <= y0:
                    raise PromptError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is inverted or has zero area; use x0 < x1 and y0 < y1 (xyxy)")
            self.boxes = b if len(b) else None
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.ndim == 3 and m.shape[2] == 1:
                m = m[..., 0]
            if m.ndim != 2:
                raise PromptError(f"mask must be H×W, got shape {m.shape}")
            if m.dtype != bool and not np.issubdtype(m.dtype, np.number):
                raise PromptError(f"mask must be a bool or numeric H×W array, got dtype {m.dtype}")
            m = m.astype(np.float32) if m.dtype != bool else m
            if m.dtype != bool and not np.isfinite(m).all():
                raise PromptError(f"mask has {int((~np.isfinite(m)).sum())} NaN or infinite values; use 0/1, bool or 0..255")
            if m.dtype != bool and m.max(initial=0) > 1.0:
                m = m / 255.0
            self.mask = np.asarray(m >= 0.5)
            if not self.mask.any():
                raise PromptError("mask is empty (no pixel >= 0.5); paint the object white on black")
        if self.text is not None:
            self.text = str(self.text).strip() or None
        if self.is_empty:
            raise PromptError("empty prompt: give at least one of points, boxes, mask or text")

    @property
    def is_empty(self) -> bool:
        return self.points is None and self.boxes is None and self.mask is None and self.text is None

    @property
    def has_spatial(self) -> bool:
        """True if the prompt has points, boxes or a mask (anything but text)."""
        return self.points is not None or self.boxes is not None or self.mask is not None

    def validate(self, height: int, width: int) -> Prompt:
        """Check the prompt against an ``height × width`` image; returns ``self``.

        Raises:
            PromptError: a point or box outside the image, a mask of the wrong size, or only
                negative points (they say where the object is not, so nothing locates it).
        """
        if self.labels is not None and not self.labels.any() and self.boxes is None and self.mask is None and self.text is None:
            raise PromptError("the prompt has only negative points (label 0), which say where the object is not; "
                              "add a box, a positive point, a mask or a text")
        if self.points is not None:
            for (x, y) in self.points:
                if not (0 <= x < width and 0 <= y < height):
                    raise PromptError(f"point ({x:g}, {y:g}) is outside the {width}x{height} image; use 0 <= x < {width}, 0 <= y < {height}")
        if self.boxes is not None:
            for x0, y0, x1, y1 in self.boxes:
                if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                    raise PromptError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside the {width}x{height} image; "
                                      f"keep 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
        if self.mask is not None and self.mask.shape != (height, width):
            raise PromptError(f"mask is {self.mask.shape[1]}x{self.mask.shape[0]} but the image is {width}x{height}; resize the mask to the image")
        return self

    def bbox(self) -> tuple[int, int, int, int] | None:
        """Union box ``(x0, y0, x1, y1)`` of all spatial parts (points count as 1-px boxes), or None."""
        parts = []
        if self.boxes is not None:
            parts += [tuple(b) for b in self.boxes]
        if self.points is not None and self.labels is not None:
            parts += [(x, y, x + 1, y + 1) for (x, y), lab in zip(self.points, self.labels) if lab == 1]
        if self.mask is not None:
            ys, xs = np.nonzero(self.mask)
            parts.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        if not parts:
            return None
        a = np.asarray(parts, dtype=np.float64)
        return int(np.floor(a[:, 0].min())), int(np.floor(a[:, 1].min())), int(np.ceil(a[:, 2].max())), int(np.ceil(a[:, 3].max()))

    def shifted(self, dx: int, dy: int, size: tuple[int, int]) -> Prompt:
        """The prompt in a crop whose top-left corner is ``(dx, dy)`` and size is ``(h, w)``."""
        h, w = size
        return Prompt(
            points=None if self.points is None else self.points - [dx, dy],
            labels=self.labels,
            boxes=None if self.boxes is None else self.boxes - [dx, dy, dx, dy],
            mask=None if self.mask is None else self.mask[dy:dy + h, dx:dx + w],
            text=self.text,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the mask is reduced to its bbox)."""
        d: dict[str, Any] = {}
        if self.points is not None:
            d["points"] = self.points.tolist()
            d["labels"] = self.labels.tolist()  # type: ignore[union-attr]
        if self.boxes is not None:
            d["boxes"] = self.boxes.tolist()
        if self.mask is not None:
            ys, xs = np.nonzero(self.mask)
            d["mask_bbox"] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        if self.text is not None:
            d["text"] = self.text
        return d


def _numbers(value: Any, what: str, expected: str) -> np.ndarray:
    """``value`` as a finite float64 array, or a :class:`PromptError` naming what was expected."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptError(f"{what} must be numbers: {expected}; got {str(value)[:80]}") from None
    if not np.isfinite(arr).all():
        raise PromptError(f"{what} must be finite numbers (no NaN or infinity): {expected}")
    return arr
