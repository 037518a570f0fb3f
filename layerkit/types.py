"""The data model: :class:`Prompt` (from :mod:`layerkit.prompt`), :class:`Layer`, :class:`LayerStack`, :class:`DecompositionResult`.

Conventions used everywhere in layerkit:

* images are ``numpy.float32`` in ``[0, 1]``, HWC; RGB is ``H×W×3``, RGBA is ``H×W×4`` with
  **straight** (un-premultiplied) alpha;
* coordinates are pixels, ``x`` to the right and ``y`` down; boxes are ``xyxy`` with
  ``x1, y1`` exclusive (``[x0, x1) × [y0, y1)``), points are ``xy`` pixel centres;
* a :class:`LayerStack` is ordered bottom → top; index 0 is the opaque background.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerkit import editing
from layerkit.ops.compositing import over
from layerkit.prompt import Prompt

__all__ = ["Prompt", "Layer", "LayerStack", "DecompositionResult", "alpha_bbox"]


@dataclass
class Layer:
    """One RGBA layer on the canvas.

    Args:
        rgba: ``H×W×4`` float32 straight-alpha RGBA in ``[0, 1]``.
        name: layer name, kept in PSD/ORA/JSON.
        prompt: the prompt that produced it, if any.
        bbox: ``(x0, y0, x1, y1)`` of ``alpha > 0``; computed when omitted.
        visible: hidden layers are kept but skipped by :meth:`LayerStack.composite`.
    """

    rgba: np.ndarray
    name: str = "layer"
    prompt: Prompt | None = None
    bbox: tuple[int, int, int, int] | None = None
    visible: bool = True

    def __post_init__(self) -> None:
        a = np.asarray(self.rgba)
        if a.ndim != 3 or a.shape[2] != 4:
            raise ValueError(f"Layer.rgba must be H×W×4 straight RGBA, got shape {a.shape}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():  # clip keeps NaN: it would reach the files
            raise ValueError(f"Layer {self.name!r}: rgba holds {int((~np.isfinite(a)).sum())} NaN/infinite values; "
                             "give finite values in [0, 1]")
        self.rgba = np.ascontiguousarray(np.clip(a, 0.0, 1.0), dtype=np.float32)
        if self.bbox is None:
            self.bbox = alpha_bbox(self.rgba[..., 3])

    @classmethod
    def from_rgb(cls, rgb: np.ndarray, alpha: np.ndarray | None = None, **kw: Any) -> Layer:
        """Build from ``H×W×3`` colour and an optional ``H×W`` alpha (opaque if omitted)."""
        a = np.ones(rgb.shape[:2], np.float32) if alpha is None else alpha
        return cls(np.concatenate([rgb, a[..., None]], axis=2), **kw)

    @property
    def alpha(self) -> np.ndarray:
        return self.rgba[..., 3]

    @property
    def rgb(self) -> np.ndarray:
        return self.rgba[..., :3]

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self.rgba.shape[0], self.rgba.shape[1]


def alpha_bbox(alpha: np.ndarray, threshold: float = 0.0) -> tuple[int, int, int, int] | None:
    """Tight box ``(x0, y0, x1, y1)`` (exclusive ends) of ``alpha > threshold``, None if empty."""
    m = alpha > threshold
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class LayerStack:
    """An ordered bottom → top list of same-size layers; index 0 is the background.

    Example:
        >>> stack = LayerStack([Layer.from_rgb(bg, name="background"), Layer(fg_rgba, name="object")])
        >>> img = stack.composite()          # H×W×3, the "over" operator in order
        >>> stack.save("out.psd")            # or "out.ora", or a folder
    """

    def __init__(self, layers: Sequence[Layer] = ()) -> None:
        self.layers: list[Layer] = list(layers)
        if self.layers:
            size = self.layers[0].size
            for layer in self.layers:
                if layer.size != size:
                    raise ValueError(f"layer {layer.name!r} is {layer.size} but the canvas is {size}; layers must share one size")

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __repr__(self) -> str:
        return f"LayerStack({[layer.name for layer in self.layers]}, size={self.size})"

    @property
    def size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the canvas, or None when empty."""
        return self.layers[0].size if self.layers else None

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def composite(self, background: np.ndarray | None = None) -> np.ndarray:
        """Compose the visible layers bottom → top with the "over" operator.

        Args:
            background: optional ``H×W×3`` colour under the stack (default: none, the result
                keeps alpha unless the bottom layer is opaque).

        Returns:
            ``H×W×3`` RGB when the result is opaque everywhere (or a background is given),
            else ``H×W×4`` straight RGBA.
        """
        if not self.layers:
            raise ValueError("cannot composite an empty LayerStack")
        visible = [layer for layer in self.layers if layer.visible]
        if background is not None:
            out: np.ndarray = background.astype(np.float32)
        elif not visible:
            h, w = self.size  # type: ignore[misc]
            return np.zeros((h, w, 4), np.float32)
        else:
            out = visible[0].rgba
            visible = visible[1:]
        for layer in visible:
            out = over(layer.rgba, out)
        if out.shape[2] == 4 and np.all(out[..., 3] >= 1.0 - 1e-6):
            out = out[..., :3]
        return np.ascontiguousarray(out, dtype=np.float32)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> str:
        """Write the stack; the format follows the suffix.

        ``.psd`` → Photoshop, ``.ora`` → OpenRaster, no suffix → a folder of PNGs plus
        ``layers.json``. Writes are atomic: nothing appears under ``path`` on failure.

        Returns:
            The written path.
        """
        from layerkit.io.layers import save_stack

        return str(save_stack(self, path, overwrite=overwrite))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LayerStack:
        """Read a stack written by :meth:`save` (PSD, ORA or PNG folder)."""
        from layerkit.io.layers import load_stack

        return load_stack(path)

    # Editing by compositing only: each method returns a new stack; see :mod:`layerkit.editing`.
    # ``ref`` is a layer index (0 = background) or name.
    def move(self, ref: int | str, dx: float, dy: float) -> LayerStack:
        """Shift a layer by ``(dx, dy)`` pixels (integer shifts keep alpha bit-exact)."""
        return editing.move(self, ref, dx, dy)

    def scale(self, ref: int | str, factor: float, center: tuple[float, float] | None = None) -> LayerStack:
        """Scale a layer about ``center`` (default: its alpha box centre)."""
        return editing.scale(self, ref, factor, center)

    def rotate(self, ref: int | str, degrees: float, center: tuple[float, float] | None = None) -> LayerStack:
        """Rotate a layer counter-clockwise by ``degrees`` about ``center``."""
        return editing.rotate(self, ref, degrees, center)

    def recolor(self, ref: int | str, hue: float = 0.0, saturation: float = 1.0, brightness: float = 1.0) -> LayerStack:
        """Shift hue (degrees) and scale saturation/brightness of a layer; alpha is untouched."""
        return editing.recolor(self, ref, hue, saturation, brightness)

    def duplicate(self, ref: int | str, dx: int = 0, dy: int = 0, name: str | None = None) -> LayerStack:
        """Copy a layer above itself, shifted by ``(dx, dy)``."""
        return editing.duplicate(self, ref, dx, dy, name)

    def remove(self, ref: int | str) -> LayerStack:
        return editing.remove(self, ref)

    def reorder(self, ref: int | str, position: int) -> LayerStack:
        """Move a layer to ``position`` in the bottom → top order."""
        return editing.reorder(self, ref, position)

    def hide(self, ref: int | str) -> LayerStack:
        return editing.hide(self, ref)

    def show(self, ref: int | str) -> LayerStack:
        return editing.show(self, ref)

    def merge(self, first: int | str, last: int | str, name: str | None = None) -> LayerStack:
        """Merge the adjacent layers ``first`` … ``last`` into one."""
        return editing.merge(self, first, last, name)

    def edit(self, edits: Sequence[Any]) -> LayerStack:
        """Apply a sequence of edits (see :func:`layerkit.editing.apply_edits`)."""
        return editing.apply_edits(self, edits)


@dataclass
class DecompositionResult:
    """What a pipeline call returns for one object.

    Attributes:
        image: ``H×W×3`` input composite.
        foreground: ``H×W×4`` straight RGBA object layer (canvas size).
        background: ``H×W×3`` complete background (occluded part filled in).
        alpha: ``H×W`` matte in ``[0, 1]``.
        mask: ``H×W`` bool segmentation before matting.
        trimap: ``H×W`` float, 0 = background, 0.5 = unknown, 1 = foreground.
        layers: the two-layer :class:`LayerStack` (background, object).
        prompt: the prompt used.
        roi: ``(x0, y0, x1, y1)`` region that was processed.
        timings: seconds per stage.
    """

    image: np.ndarray
    foreground: np.ndarray
    background: np.ndarray
    alpha: np.ndarray
    mask: np.ndarray
    trimap: np.ndarray
    layers: LayerStack
    prompt: Prompt | None = None
    roi: tuple[int, int, int, int] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> str:
        """Save :attr:`layers` (see :meth:`LayerStack.save`)."""
        return self.layers.save(path, overwrite=overwrite)

