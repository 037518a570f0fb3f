"""Layer editing by compositing only: move, scale, rotate, recolor, duplicate, remove, reorder,
hide/show and merge, as functions on a :class:`~layerkit.types.LayerStack`.

No model is called. Every function returns a **new** stack (the input is never modified) and
touches one layer only, so the other layers stay bit-exact. Layers are ``H×W×4`` float32
straight-alpha RGBA in ``[0, 1]`` on the canvas; index 0 is the opaque background.

* Integer moves shift arrays (no resampling): alpha and colour values are kept bit-exact.
* Scale, rotation and fractional moves resample the **premultiplied** layer (bilinear; area
  averaging when shrinking), so no dark fringe appears at soft edges.
* Recolor changes colour only; the alpha channel is kept exactly.

A layer is named by its index in the stack (``int``) or by its name (``str``).

Example:
    >>> stack = LayerStack.load("stack/")
    >>> stack = move(stack, 2, 40, -10)
    >>> stack = recolor(stack, "lamp", hue=30)
    >>> apply_edits(stack, [Edit("scale", 1, {"factor": 1.2}), Edit("remove", 3)]).save("edited.psd")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from layerkit.errors import EditError
from layerkit.ops.compositing import over

if TYPE_CHECKING:  # the functions build new layers with type(layer) / type(stack): no import of the nouns
    from layerkit.types import Layer, LayerStack

LayerRef = int | str

#: edit operations understood by :func:`apply_edits` (name → function of this module)
OPERATIONS: tuple[str, ...] = ("move", "scale", "rotate", "recolor", "duplicate", "remove", "reorder", "hide", "show", "merge")


def resolve_index(stack: LayerStack, ref: LayerRef) -> int:
    """Index of the layer ``ref`` (index, negative index from the top, or name).

    Raises:
        EditError: no such layer; the message lists the layers.
    """
    n = len(stack)
    listing = ", ".join(f"{i}={name}" for i, name in enumerate(stack.names))
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        i = int(ref)
        if -n <= i < n:
            return i % n
        raise EditError(f"layer {i} does not exist; the stack has {n} layers (0..{n - 1}): {listing}")
    matches = [i for i, name in enumerate(stack.names) if name == ref]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise EditError(f"layer name {ref!r} is ambiguous (layers {matches}); use an index instead")
    raise EditError(f"no layer named {ref!r}; layers are: {listing}")


def _object_index(stack: LayerStack, ref: LayerRef, what: str) -> int:
    i = resolve_index(stack, ref)
    if i == 0:
        raise EditError(f"layer 0 is the background and must cover the canvas; it cannot be {what} "
                        "(edit an object layer, 1 or above)")
    return i


def _replace(stack: LayerStack, i: int, rgba: np.ndarray, **changes: Any) -> LayerStack:
    old = stack[i]
    new = type(old)(rgba, name=changes.get("name", old.name), prompt=old.prompt, visible=changes.get("visible", old.visible))
    return type(stack)([*stack.layers[:i], new, *stack.layers[i + 1:]])


def shift_rgba(rgba: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Shift an ``H×W×C`` array by whole pixels; uncovered pixels become 0 (transparent).

    Values are copied, not resampled, so every value that stays on the canvas is bit-exact.
    """
    h, w = rgba.shape[:2]
    out = np.zeros_like(rgba)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_x, dst_x = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    src_y, dst_y = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    out[dst_y, dst_x] = rgba[src_y, src_x]
    return out


def warp_rgba(rgba: np.ndarray, matrix: np.ndarray, shrink: bool = False) -> np.ndarray:
    """Apply a ``2×3`` affine map (source → destination pixels) to straight RGBA.

    The layer is premultiplied, warped (bilinear, transparent outside), then un-premultiplied.

    Args:
        rgba: ``H×W×4`` straight RGBA float32.
        matrix: ``2×3`` affine matrix in OpenCV's convention (``dst = M · [x, y, 1]``).
        shrink: the map shrinks the layer; the source is pre-filtered to avoid aliasing.

    Returns:
        ``H×W×4`` straight RGBA float32 in ``[0, 1]``.
    """
    import cv2

    h, w = rgba.shape[:2]
    prem = np.concatenate([rgba[..., :3] * rgba[..., 3:4], rgba[..., 3:4]], axis=2).astype(np.float32)
    if shrink:
        k = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        if k < 1.0:
            sigma = 0.5 * (1.0 / k - 1.0)
            if sigma > 0.25:  # capped: a blur wider than the layer changes nothing more
                prem = cv2.GaussianBlur(prem, (0, 0), min(sigma, float(max(h, w))))
    out = cv2.warpAffine(prem, matrix.astype(np.float64), (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    a = np.clip(out[..., 3:4], 0.0, 1.0)
    rgb = np.divide(out[..., :3], a, out=np.zeros_like(out[..., :3]), where=a > 1e-6)
    return np.concatenate([np.clip(rgb, 0.0, 1.0), a], axis=2).astype(np.float32)


def _center(layer: Layer, center: tuple[float, float] | None) -> tuple[float, float]:
    if center is not None:
        return float(center[0]), float(center[1])
    if layer.bbox is None:
        h, w = layer.size
        return w / 2.0, h / 2.0
    x0, y0, x1, y1 = layer.bbox
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def _finite(op: str, **values: Any) -> list[float]:
    """The values as floats; :class:`EditError` if any is not a finite number (NaN, ±inf, text)."""
    out = []
    for k, v in values.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise EditError(f"{op}: {k} must be a number, got {str(v)[:40]!r}") from None
        if not math.isfinite(f):
            raise EditError(f"{op}: {k} must be a finite number, got {f}")
        out.append(f)
    return out


def move(stack: LayerStack, ref: LayerRef, dx: float, dy: float) -> LayerStack:
    """Move an object layer by ``(dx, dy)`` pixels (x right, y down).

    Integer offsets copy pixels (bit-exact alpha and colour); fractional ones resample
    bilinearly. What leaves the canvas is cropped.

    Raises:
        EditError: missing layer, or the background (layer 0).
    """
    dx, dy = _finite("move", dx=dx, dy=dy)
    i = _object_index(stack, ref, "moved")
    rgba = stack[i].rgba
    if float(dx).is_integer() and float(dy).is_integer():
        return _replace(stack, i, shift_rgba(rgba, int(dx), int(dy)))
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return _replace(stack, i, warp_rgba(rgba, m))


def scale(stack: LayerStack, ref: LayerRef, factor: float | tuple[float, float],
          center: tuple[float, float] | None = None) -> LayerStack:
    """Scale an object layer by ``factor`` (or ``(fx, fy)``) about ``center`` (default: its bbox centre).

    Raises:
        EditError: missing layer, background, or a factor that is not positive.
    """
    i = _object_index(stack, ref, "scaled")
    fx, fy = (factor, factor) if np.isscalar(factor) else factor  # type: ignore[misc]
    fx, fy = _finite("scale", factor_x=fx, factor_y=fy)
    if not (fx > 0 and fy > 0):
        raise EditError(f"scale factor must be positive, got {fx:g}, {fy:g}")
    if not (SCALE_RANGE[0] <= min(fx, fy) and max(fx, fy) <= SCALE_RANGE[1]):
        raise EditError(f"scale factor {fx:g}, {fy:g} is outside {SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g}")
    cx, cy = _center(stack[i], center)
    m = np.array([[fx, 0.0, cx - fx * cx], [0.0, fy, cy - fy * cy]])
    return _replace(stack, i, warp_rgba(stack[i].rgba, m, shrink=min(fx, fy) < 1.0))


def rotate(stack: LayerStack, ref: LayerRef, degrees: float, center: tuple[float, float] | None = None) -> LayerStack:
    """Rotate an object layer by ``degrees`` counter-clockwise (as on screen) about ``center``.

    Raises:
        EditError: missing layer or background.
    """
    import cv2

    (degrees,) = _finite("rotate", degrees=degrees)
    i = _object_index(stack, ref, "rotated")
    cx, cy = _center(stack[i], center)
    m = cv2.getRotationMatrix2D((cx, cy), float(degrees), 1.0)
    return _replace(stack, i, warp_rgba(stack[i].rgba, m))


#: Accepted scale factors: below, a layer shrinks to nothing; above, one pixel covers any canvas.
SCALE_RANGE = (1e-3, 1e3)
_MAX_FACTOR = 1e6  # a saturation/brightness factor beyond this saturates every pixel anyway


def recolor_rgb(rgb: np.ndarray, hue: float = 0.0, saturation: float = 1.0, brightness: float = 1.0) -> np.ndarray:
    """Shift hue by ``hue`` degrees and multiply HSV saturation and value (``H×W×3`` → ``H×W×3``)."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2HSV)  # H in [0, 360)
    # hue reduced and factors capped in float64 first: a huge finite factor must not overflow float32
    hsv[..., 0] = np.mod(hsv[..., 0] + float(hue) % 360.0, 360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * min(float(saturation), _MAX_FACTOR), 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] * min(float(brightness), _MAX_FACTOR), 0.0, 1.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0).astype(np.float32)


def recolor(stack: LayerStack, ref: LayerRef, hue: float = 0.0, saturation: float = 1.0,
            brightness: float = 1.0) -> LayerStack:
    """Change a layer's colour: hue shift in degrees, saturation and brightness factors.

    The alpha channel is kept exactly. Works on the background too.

    Raises:
        EditError: missing layer, or a negative factor.
    """
    hue, saturation, brightness = _finite("recolor", hue=hue, saturation=saturation, brightness=brightness)
    i = resolve_index(stack, ref)
    if saturation < 0 or brightness < 0:
        raise EditError(f"saturation and brightness are factors >= 0, got {saturation} and {brightness}")
    rgba = stack[i].rgba.copy()
    rgba[..., :3] = recolor_rgb(rgba[..., :3], hue, saturation, brightness)
    return _replace(stack, i, rgba)


def duplicate(stack: LayerStack, ref: LayerRef, dx: int = 0, dy: int = 0, name: str | None = None) -> LayerStack:
    """Insert a copy of an object layer just above it, moved by ``(dx, dy)`` pixels.

    Raises:
        EditError: missing layer or background.
    """
    dx, dy = _finite("duplicate", dx=dx, dy=dy)
    i = _object_index(stack, ref, "duplicated")
    src = stack[i]
    rgba = shift_rgba(src.rgba, int(dx), int(dy)) if float(dx).is_integer() and float(dy).is_integer() \
        else warp_rgba(src.rgba, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]))
    copy = type(src)(rgba, name=name or f"{src.name} copy", prompt=src.prompt, visible=src.visible)
    return type(stack)([*stack.layers[:i + 1], copy, *stack.layers[i + 1:]])


def remove(stack: LayerStack, ref: LayerRef) -> LayerStack:
    """Remove an object layer (what it covered shows through: the background is complete).

    Raises:
        EditError: missing layer or background.
    """
    i = _object_index(stack, ref, "removed")
    return type(stack)([layer for j, layer in enumerate(stack.layers) if j != i])


def reorder(stack: LayerStack, ref: LayerRef, position: int) -> LayerStack:
    """Move an object layer to ``position`` in the bottom → top order (1 … top; -1 = top).

    Raises:
        EditError: missing layer, background, or a position outside ``1 … len-1``.
    """
    i = _object_index(stack, ref, "reordered")
    n = len(stack)
    pos = position % n if -n < position < 0 else position
    if not 1 <= pos < n:
        raise EditError(f"position {position} is outside 1..{n - 1}; position 0 is the background's")
    layers = [layer for j, layer in enumerate(stack.layers) if j != i]
    layers.insert(pos, stack[i])
    return type(stack)(layers)


def set_visible(stack: LayerStack, ref: LayerRef, visible: bool) -> LayerStack:
    """Hide (``visible=False``) or show a layer; hidden layers are kept but not composited."""
    i = resolve_index(stack, ref)
    return _replace(stack, i, stack[i].rgba, visible=bool(visible))


def hide(stack: LayerStack, ref: LayerRef) -> LayerStack:
    """Hide a layer (see :func:`set_visible`)."""
    return set_visible(stack, ref, False)


def show(stack: LayerStack, ref: LayerRef) -> LayerStack:
    """Show a hidden layer (see :func:`set_visible`)."""
    return set_visible(stack, ref, True)


def merge(stack: LayerStack, first: LayerRef, last: LayerRef, name: str | None = None) -> LayerStack:
    """Merge the adjacent layers ``first … last`` (inclusive) into one by the "over" operator.

    The composite of the stack is unchanged ("over" is associative). Merging the background
    with layers above it gives a new opaque background. Hidden layers in the range are dropped.

    Raises:
        EditError: missing layers, or ``first > last``.
    """
    a, b = resolve_index(stack, first), resolve_index(stack, last)
    if a > b:
        raise EditError(f"merge range {a}-{b} is reversed; give the lower layer first (e.g. {b}-{a})")
    if a == b:
        return stack
    part = [layer for layer in stack.layers[a:b + 1] if layer.visible]
    h, w = stack.size  # type: ignore[misc]
    out: np.ndarray = np.zeros((h, w, 4), np.float32)
    for layer in part:
        out = over(layer.rgba, out)
    merged = type(stack.layers[a])(out, name=name or "+".join(layer.name for layer in stack.layers[a:b + 1]))
    return type(stack)([*stack.layers[:a], merged, *stack.layers[b + 1:]])


@dataclass
class Edit:
    """One edit for :func:`apply_edits`.

    Attributes:
        op: one of :data:`OPERATIONS`.
        target: the layer (index into the stack **as loaded**, or a name).
        args: keyword arguments of the operation's function (``{"dx": 4, "dy": 0}`` for move,
            ``{"factor": 1.2}`` for scale, ``{"degrees": 15}`` for rotate, ``{"hue": 30}`` for
            recolor, ``{"dx": 120, "dy": 0}`` for duplicate, ``{"position": 3}`` for reorder,
            ``{"last": 3}`` for merge).
    """

    op: str
    target: LayerRef
    args: dict[str, Any] = field(default_factory=dict)


_FUNCS = {"move": move, "scale": scale, "rotate": rotate, "recolor": recolor, "duplicate": duplicate,
          "remove": remove, "reorder": reorder, "hide": hide, "show": show, "merge": merge}


def apply_edits(stack: LayerStack, edits: Sequence[Edit]) -> LayerStack:
    """Apply edits in order; integer targets always mean layers of the stack **as given**.

    So ``[Edit("remove", 1), Edit("move", 3, {...})]`` moves the layer that was at index 3 before
    the removal. Names are looked up in the current stack.

    Raises:
        EditError: unknown operation, a missing layer, or a layer removed by an earlier edit.
    """
    n0 = len(stack)
    ids: list[int | None] = list(range(n0))  # original index of each current layer (None: created)
    for e in edits:
        if e.op not in _FUNCS:
            raise EditError(f"unknown edit {e.op!r}; valid edits: {', '.join(OPERATIONS)}")
        i = _current(stack, ids, e.target, n0)
        args = dict(e.args)
        if e.op == "merge":
            args["last"] = _current(stack, ids, args.get("last", e.target), n0)
            if args["last"] < i:
                raise EditError(f"merge range {e.target}-{e.args.get('last')} is reversed (after earlier edits); give the lower layer first")
        before = len(stack)
        stack = _FUNCS[e.op](stack, i, **args)
        if e.op == "remove":
            del ids[i]
        elif e.op == "duplicate":
            ids.insert(i + 1, None)
        elif e.op == "reorder":
            moved = ids.pop(i)
            pos = args["position"] % before if -before < args["position"] < 0 else args["position"]
            ids.insert(pos, moved)
        elif e.op == "merge" and args["last"] > i:
            ids[i:args["last"] + 1] = [None]
    return stack


def _current(stack: LayerStack, ids: list[int | None], ref: LayerRef, n0: int) -> int:
    if isinstance(ref, str):
        return resolve_index(stack, ref)
    r = int(ref)
    orig = r % n0 if -n0 <= r < n0 else None
    if orig is None:
        raise EditError(f"layer {r} does not exist; the stack had {n0} layers (0..{n0 - 1}): "
                        + ", ".join(f"{i}={name}" for i, name in zip(ids, stack.names) if i is not None))
    if orig not in ids:
        raise EditError(f"layer {r} was removed or merged by an earlier edit; edit it before that")
    return ids.index(orig)
