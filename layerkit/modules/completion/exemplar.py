"""Weight-free layer completion: each layer's hidden part continued in shape and filled from its own texture.

Role ``completion``: ``completer(stack) -> stack`` on a finished bottom → top
:class:`~layerkit.types.LayerStack`. For every object layer ``k`` (index ≥ 1) the *cover*
``C_k = 1 − Π_{j>k} (1 − α_j)`` of the layers above it is computed; where ``C_k ≥
cover_threshold`` (the layer is hidden there, default 0.99) its alpha and colour are rewritten,
nowhere else. A change of ``δ`` in layer ``k`` moves the composite by at most ``(1 − C_k)·δ``,
so the composite — and the recomposition PSNR — stays within ``1 − cover_threshold`` of what it
was at those pixels, and is unchanged everywhere else.

1. **Shape** (:func:`~layerkit.modules.completion.shape.amodal_shape`): the visible mask ``V = α_k > 0.5`` outside the hidden
   region is continued into it by its convex hull, plus either an ellipse fitted to the *true*
   contour (the part of ``V``'s outline not touching the occluders) when it agrees with ``V``
   (IoU ≥ ``ellipse_iou`` outside the hidden region; it restores a rounded side that the hull
   would cut with a chord), or else the visible part continued from the occlusion boundary up to
   ``depth`` object half-widths (``shape._extend``; with ``ring_side`` only where a hidden pixel is
   nearer to that boundary than to the object's true outline). Nothing farther than
   ``max_reach`` × ``sqrt(|V|)`` from ``V`` is added. With ``outline`` the visible outline is
   also continued through the hidden region by curves keeping its tangents at the T-junctions
   (``shape._outline``). What the peeler already put there
   (``α > 0.5``) is kept (``keep_existing``). Only the hidden region changes.
2. **Colour** (:func:`fill_from_source`): the new hidden pixels are filled from the layer's own
   fully visible pixels only (``α_k > 0.9`` and ``C_k < 0.01``), never from the occluder or the
   background: ``fill="exemplar"`` runs coarse-to-fine PatchMatch (the kernels of
   :mod:`layerkit.ops.inpainting.patchmatch`) whose source patches must lie wholly inside
   those pixels, started from the harmonic (membrane) fill; ``fill="harmonic"`` keeps the
   smooth membrane fill; ``fill="texture"`` is the membrane fill plus the exemplar fill's
   high-pass detail.

The driver of step 2 is written here rather than calling ``inpaint_exemplar`` because that
function takes its source from *everything* outside the hole; here the source is restricted to
the object's own visible pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from layerkit.modules.base import Completer
from layerkit.modules.completion.shape import SHAPES, amodal_shape
from layerkit.ops.inpainting.patchmatch import _search, _upsample_field, _vote
from layerkit.ops.inpainting.smooth import inpaint_harmonic
from layerkit.types import Layer, LayerStack

FILLS = ("exemplar", "harmonic", "texture")


def cover_above(alphas: list[np.ndarray]) -> list[np.ndarray]:
    """``C_k = 1 − Π_{j>k}(1 − α_j)`` for each layer of a bottom → top list of ``H×W`` alphas."""
    out: list[np.ndarray] = [np.zeros_like(alphas[0])] * len(alphas)
    transmit = np.ones_like(alphas[0], dtype=np.float32)
    for k in range(len(alphas) - 1, -1, -1):
        out[k] = 1.0 - transmit
        transmit = transmit * (1.0 - alphas[k])
    return out


def fill_from_source(image: np.ndarray, source: np.ndarray, target: np.ndarray, method: str = "exemplar",
                     patch_size: int = 7, seed: int = 0) -> np.ndarray:
    """Fill ``target`` of ``image`` from the pixels of ``source`` only.

    Args:
        image: ``H×W×3`` float32 in ``[0, 1]``; values outside ``source`` are ignored.
        source: ``H×W`` bool, the known pixels to copy from.
        target: ``H×W`` bool, the pixels to fill (disjoint from ``source``).
        method: one of :data:`FILLS`.
        patch_size: odd PatchMatch patch side.
        seed: random seed of the PatchMatch search.

    Returns:
        ``H×W×3`` float32 equal to ``image`` on ``source``; ``target`` filled, the remaining
        pixels hold the membrane fill.
    """
    if method not in FILLS:
        raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {method!r}")
    smooth = inpaint_harmonic(image.astype(np.float32), ~source)
    if method == "harmonic" or not target.any():
        return smooth
    tex = _exemplar(smooth, source, target, patch_size, seed)
    if method == "exemplar":
        return tex
    blur = cv2.GaussianBlur(tex, (0, 0), 2.0)
    return np.where(target[..., None], np.clip(smooth + tex - blur, 0.0, 1.0), smooth).astype(np.float32)


def _exemplar(start: np.ndarray, source: np.ndarray, target: np.ndarray, patch_size: int, seed: int) -> np.ndarray:
    """Coarse-to-fine PatchMatch with source patches wholly inside ``source`` (see the module docstring)."""
    r = patch_size // 2
    images, sources, targets = [start], [source], [target]
    depth = float(cv2.distanceTransform((~source).astype(np.uint8), cv2.DIST_L2, 3)[target].max())
    while depth / 2 ** (len(images) - 1) > 2 * patch_size and min(images[-1].shape[:2]) >= 8 * patch_size:
        s, t = sources[-1], targets[-1]
        s = np.pad(s, ((0, s.shape[0] % 2), (0, s.shape[1] % 2)))
        t = np.pad(t, ((0, t.shape[0] % 2), (0, t.shape[1] % 2)))
        sources.append(s[0::2, 0::2] & s[1::2, 0::2] & s[0::2, 1::2] & s[1::2, 1::2])
        targets.append(t[0::2, 0::2] | t[1::2, 0::2] | t[0::2, 1::2] | t[1::2, 1::2])
        prev = images[-1]
        images.append(cv2.resize(prev, ((prev.shape[1] + 1) // 2, (prev.shape[0] + 1) // 2), interpolation=cv2.INTER_AREA))
    field = None
    img = None
    box = np.ones((patch_size, patch_size), np.uint8)
    for level in range(len(images) - 1, -1, -1):
        tgt = np.pad(targets[level], r)
        h, w = tgt.shape
        ok = cv2.erode(np.pad(sources[level], r).astype(np.uint8), box).astype(bool)
        ok[:2 * r], ok[h - 2 * r:], ok[:, :2 * r], ok[:, w - 2 * r:] = False, False, False, False
        near = cv2.dilate(tgt.astype(np.uint8), box).astype(bool)
        near[:r], near[h - r:], near[:, :r], near[:, w - r:] = False, False, False, False
        ty, tx = (a.astype(np.int64) for a in np.nonzero(near))
        sy, sx = (a.astype(np.int64) for a in np.nonzero(ok))
        base = np.pad(images[level], ((r, r), (r, r), (0, 0)), mode="reflect").astype(np.float32)
        if sy.size == 0 or ty.size == 0:
            return start
        rng = np.random.default_rng(seed + level)
        if field is None:
            pick = rng.integers(0, sy.size, ty.size)
            ny, nx = sy[pick], sx[pick]
            img = base
            radius, rounds = max(h, w), 3
        else:
            ny, nx = _upsample_field(field, ty, tx, r, ok, sy, sx, rng)
            up = cv2.resize(img[r:-r, r:-r], (w - 2 * r, h - 2 * r), interpolation=cv2.INTER_LINEAR)
            img = np.where(tgt[..., None], np.pad(up, ((r, r), (r, r), (0, 0)), mode="reflect"), base).astype(np.float32)
            img = _vote(img, tgt, ty, tx, ny, nx, r)
            radius, rounds = 16, 2
        for e in range(rounds):
            _search(img, ty, tx, ny, nx, ok, 3, r, seed + 7919 * level + e, radius)
            img = _vote(img, tgt, ty, tx, ny, nx, r)
        field = (ty, tx, ny, nx, np.int64(h), np.int64(w))
    out = img[r:-r, r:-r]  # type: ignore[index]
    return np.where(target[..., None], out, start).astype(np.float32)


def _composite(rgbas: list[np.ndarray]) -> np.ndarray:
    out = rgbas[0][..., :3].astype(np.float32)
    for x in rgbas[1:]:
        out = x[..., :3] * x[..., 3:] + out * (1.0 - x[..., 3:])
    return out


def compensate(rgbas: list[np.ndarray], target: np.ndarray, tol: float = 1.0 / 1024) -> None:
    """Re-solve upper layers' colours (in place) so the stack composites to ``target`` again.

    Where completing a lower layer under a partly transparent upper layer moved the composite,
    the layers that show there absorb the difference from the top down: layer ``j`` (weight
    ``w = α_j · Π_{i>j}(1 − α_i)`` above 0.05) takes ``F_j += ΔI / w``, clipped to ``[0, 1]``,
    and what clipping left goes on to the next layer down.

    Args:
        rgbas: ``H×W×4`` straight RGBA layers, bottom → top; index 0 is opaque.
        target: ``H×W×3`` composite to restore (the stack's composite before completion).
    """
    diff = target - _composite(rgbas)
    todo = np.abs(diff).max(axis=2) > tol
    transmit = np.ones(target.shape[:2], np.float32)
    for j in range(len(rgbas) - 1, -1, -1):
        if not todo.any():
            return
        a = rgbas[j][..., 3]
        w = a * transmit
        sel = todo & (w > 0.05)
        if sel.any():
            rgb = rgbas[j][..., :3]
            old = rgb[sel]
            new = np.clip(old + diff[sel] / w[sel][:, None], 0.0, 1.0)
            rgb[sel] = new
            diff[sel] -= w[sel][:, None] * (new - old)
            todo &= np.abs(diff).max(axis=2) > tol
        transmit = transmit * (1.0 - a)


class ExemplarCompleter(Completer):
    """Completes the hidden part of every object layer of a stack (see the module docstring).

    Args:
        shape: amodal shape continuation, one of :data:`SHAPES`.
        fill: colour fill, one of :data:`FILLS`.
        cover_threshold: least cover by the layers above at which a pixel of a layer is hidden
            (and may be rewritten); in ``(0.5, 1]``.
        ellipse_iou: least agreement of a fitted ellipse with the visible mask to be used.
        depth: how far (in object half-widths) the visible part is continued where no ellipse fits.
        sides: restrict that continuation to the silhouette's sides continued straight.
        ring_side: let that continuation grow only out of the occlusion boundary (hidden pixels
            nearer to the visible pixels touching the occluder than to the rest of the object).
        max_reach: drop continued pixels farther than this many ``sqrt(visible area)`` from the
            visible part (``None``: no limit).
        outline: also continue the visible outline through the hidden region by curves that keep
            its tangents at the T-junctions, tangent length this × the gap (0: off).
        keep_existing: keep what the layer already has in its hidden region (α > 0.5).
        patch_size: odd PatchMatch patch side (pixels).
        margin: context kept around each object's box when cropping, as a share of its size.
        seed: PatchMatch seed.

    Example:
        >>> stack = ExemplarCompleter()(stack)     # every lower layer's hidden part filled in
    """

    role = "completion"

    def __init__(self, shape: str = "auto", fill: str = "texture", cover_threshold: float = 0.5,
                 ellipse_iou: float = 0.8, depth: float = 1.25, sides: bool = False, keep_existing: bool = True,
                 patch_size: int = 7, margin: float = 0.5, seed: int = 0, ring_side: bool = True,
                 max_reach: float | None = 0.5, outline: float = 1.5) -> None:
        if shape not in SHAPES:
            raise ValueError(f"completion.shape must be one of {', '.join(SHAPES)}, got {shape!r}")
        if fill not in FILLS:
            raise ValueError(f"completion.fill must be one of {', '.join(FILLS)}, got {fill!r}")
        if not 0.5 <= cover_threshold <= 1.0:
            raise ValueError(f"completion.cover_threshold must be in [0.5, 1], got {cover_threshold}")
        if patch_size < 3 or patch_size % 2 == 0:
            raise ValueError(f"completion.patch_size must be odd and >= 3, got {patch_size}")
        if margin < 0:
            raise ValueError(f"completion.margin must be >= 0, got {margin}")
        if depth < 0:
            raise ValueError(f"completion.depth must be >= 0, got {depth}")
        if max_reach is not None and max_reach <= 0:
            raise ValueError(f"completion.max_reach must be > 0 or null, got {max_reach}")
        if outline < 0:
            raise ValueError(f"completion.outline must be >= 0, got {outline}")
        self.ring_side, self.max_reach = bool(ring_side), None if max_reach is None else float(max_reach)
        self.outline = float(outline)
        self.depth, self.sides, self.keep_existing = float(depth), bool(sides), bool(keep_existing)
        self.shape, self.fill, self.cover_threshold = shape, fill, float(cover_threshold)
        self.ellipse_iou, self.patch_size, self.margin, self.seed = float(ellipse_iou), int(patch_size), float(margin), int(seed)

    def __call__(self, stack: LayerStack, amodal: list[np.ndarray | None] | None = None) -> LayerStack:
        """A new stack whose object layers (index ≥ 1) have their hidden parts completed.

        ``amodal[k]`` (optional, one entry per layer) is a known whole-object mask of layer ``k``
        used instead of the shape continuation (see :meth:`complete_layer`).
        """
        if len(stack) < 3:
            return stack
        alphas = [layer.alpha.astype(np.float32) for layer in stack]
        covers = cover_above(alphas)
        given = list(amodal) if amodal is not None else [None] * len(stack)
        if len(given) != len(stack):
            raise ValueError(f"amodal lists {len(given)} masks for {len(stack)} layers")
        rgbas = [stack[0].rgba.copy()] + [self.complete_layer(layer.rgba, covers[k], given[k]) if k < len(stack) - 1
                                   else layer.rgba.copy() for k, layer in enumerate(stack) if k > 0]
        if self.cover_threshold < 1.0:
            compensate(rgbas, stack.composite()[..., :3])
        return LayerStack([Layer(rgba, name=layer.name, prompt=layer.prompt, visible=layer.visible)
                           for rgba, layer in zip(rgbas, stack)])

    def complete_layer(self, rgba: np.ndarray, cover: np.ndarray, amodal: np.ndarray | None = None) -> np.ndarray:
        """Complete one ``H×W×4`` straight-RGBA layer given the ``H×W`` cover of the layers above it.

        ``amodal`` (``H×W`` bool, optional) is a known whole-object mask (e.g. from a learned
        amodal model, or the GT shape when measuring the ceiling of the colour fill); inside the
        hidden region it replaces the shape continuation, and ``keep_existing`` is not applied.
        """
        alpha = rgba[..., 3]
        hidden = cover >= self.cover_threshold
        visible = (alpha > 0.5) & ~hidden
        if not hidden.any() or visible.sum() < 16:
            return rgba.copy()
        ys, xs = np.nonzero(visible)
        h, w = alpha.shape
        my, mx = int(self.margin * (ys.max() - ys.min() + 1)) + 2, int(self.margin * (xs.max() - xs.min() + 1)) + 2
        y0, y1, x0, x1 = max(0, ys.min() - my), min(h, ys.max() + 1 + my), max(0, xs.min() - mx), min(w, xs.max() + 1 + mx)
        if amodal is not None and (np.asarray(amodal, bool) & hidden).any():   # the given shape may reach farther
            ay, ax = np.nonzero(np.asarray(amodal, bool) & hidden)
            y0, y1, x0, x1 = min(y0, ay.min()), max(y1, ay.max() + 1), min(x0, ax.min()), max(x1, ax.max() + 1)
        crop = (slice(y0, y1), slice(x0, x1))
        hid, vis = hidden[crop], visible[crop]
        if not hid.any():
            return rgba.copy()
        if amodal is not None:
            target = np.asarray(amodal, bool)[crop] & hid
        else:
            target = amodal_shape(vis, hid, self.shape, self.ellipse_iou, self.depth, self.sides, self.ring_side,
                                  self.max_reach, self.outline)
        if self.keep_existing and amodal is None:
            target |= hid & (alpha[crop] > 0.5)
        source = (alpha[crop] > 0.9) & (cover[crop] < 0.01)
        out = rgba.copy()
        a = out[crop][..., 3]
        a[hid] = target[hid].astype(np.float32)
        if target.any() and source.sum() >= 16:
            fill = fill_from_source(rgba[crop][..., :3], source, target & ~source, self.fill, self.patch_size, self.seed)
        else:
            fill = rgba[crop][..., :3]
        rgb = out[crop][..., :3]
        rgb[hid] = np.where(target[hid][:, None], fill[hid], 0.0)
        return out
