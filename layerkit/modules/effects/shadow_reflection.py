"""Weight-free visual effects: move an object's cast shadow / reflection into its layer.

Role ``effects`` (runs after the decomposer and refiner, on the full canvas, because an effect
leaves the prompt's box). Given the image ``C``, the object's alpha ``α``, colour ``F`` and the
background ``B`` (which still holds the effect), it returns a new layer ``(α', F')`` = object
over its effect and a cleaned ``B'``, with ``α'·F' + (1 − α')·B' = α·F + (1 − α)·B`` (the stack
still recomposes the input).

**Shadow** = multiplicative darkening of the ground, ``B = r·B̂`` with ``r ∈ (0, 1]``: stored as
black (``F = 0``) with alpha ``a = 1 − r``, so ``B̂ = B / (1 − a)`` exactly. Black is what marks a
shadow pixel in every file format: an HSV recolour leaves ``V = 0`` unchanged, and it commutes
with the premultiplied mix of the object's soft edge over its shadow, so ``edit --recolor``
changes the object and not its shadow. ``B̂`` (the unshadowed surface) is estimated by ratio
against the surrounding ground: the illumination (an edge-preserving median of the luminance) is
inpainted from outside the shadow and ``r`` = local illumination / inpainted illumination; the
texture of ``B`` is kept (``B`` is divided by a smooth ratio, not blurred).

Detection: the cast shadow is the silhouette projected from the object's lowest row along some
direction (a distant light on a ground plane). Projections on a grid of directions are scored
by the log-luminance contrast between the projected region (outside the object) and a ring
around it; the best one, when dark enough, seeds the ratio estimate, and the candidate is kept
only if it darkens by at least ``min_darkening`` and keeps the ground's chromaticity
(``max_chroma_shift``: a shadow darkens, a dark neighbouring object has another colour).

**Reflection** = the object flipped about its lowest row, per row shifted (ripple) and
attenuated: ``C = (1 − k·ρ)·B̂ + k·d·ρ·R`` with ``R, ρ`` the mirrored colour and alpha. ``k`` and
``d`` are fitted per row by least squares against the smooth inpainted surface, the best shift
per row in ``±ripple`` pixels; it is kept when it explains at least ``min_explained`` of the
variation below the object. ``B̂ = (C − A·F)/(1 − A)`` keeps the surface's texture.
"""

from __future__ import annotations

import cv2
import numpy as np

from layerkit.modules.base import Effects
from layerkit.modules.effects.common import EffectEstimate
from layerkit.modules.effects.common import fill as _fill
from layerkit.modules.effects.common import luma as _luma
from layerkit.modules.effects.common import median as _median
from layerkit.modules.effects.common import odd as _odd
from layerkit.modules.effects.reflection import ReflectionMixin
from layerkit.types import Prompt, alpha_bbox


class ShadowReflectionEffects(ReflectionMixin, Effects):
    """Find an object's cast shadow / reflection and move it into the object's layer.

    Args:
        effects: kinds looked for, a subset of ``("shadow", "reflection")``.
        work_side: detection runs with the object scaled to about this height in pixels.
        reach: search distance around the object, in object heights.
        min_darkening: a shadow darkens the ground by at least this share (``1 − r``).
        min_contrast: smallest contrast (ring − inside log-luminance, over the ring's spread + 0.05).
        max_chroma_shift: largest mean chromaticity change a shadow may cause.
        min_explained: share of the variation below the object a reflection must explain.
        min_dim: smallest colour-to-alpha ratio of a reflection (a mirrored *darkening* is a shadow).
        ripple: largest per-row horizontal shift (pixels at work size) of a reflection.
        median_ratio: illumination median kernel, as a share of the object height.
        min_r2: share of the luminance-ratio variation around the object the fitted shadow must explain.
        candidates: distinct projected silhouettes (best contrast first) tried before giving up.
    """

    def __init__(self, effects: tuple[str, ...] | list[str] = ("shadow", "reflection"), work_side: int = 120,
                 reach: float = 1.5, min_darkening: float = 0.12, min_contrast: float = 0.9,
                 max_chroma_shift: float = 0.03, min_explained: float = 0.3, min_dim: float = 0.6, ripple: int = 3,
                 median_ratio: float = 0.06, min_r2: float = 0.4, candidates: int = 3) -> None:
        bad = [e for e in effects if e not in ("shadow", "reflection")]
        if bad:
            raise ValueError(f"effects: unknown kind(s) {bad}; use shadow and/or reflection")
        if work_side < 16:
            raise ValueError(f"work_side must be at least 16, got {work_side}")
        self.effects = tuple(effects)
        self.work_side = int(work_side)
        self.reach = float(reach)
        self.min_darkening = float(min_darkening)
        self.min_contrast = float(min_contrast)
        self.max_chroma_shift = float(max_chroma_shift)
        self.min_explained = float(min_explained)
        self.min_dim = float(min_dim)
        self.ripple = int(ripple)
        self.median_ratio = float(median_ratio)
        self.min_r2 = float(min_r2)
        self.candidates = int(candidates)
        self.last: list[EffectEstimate] = []
        #: diagnostics of the last call (scores of the tests, for benchmarks and tuning)
        self.trace: dict[str, float] = {}

    # ------------------------------------------------------------------ entry point
    def __call__(self, image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray, background: np.ndarray,
                 prompt: Prompt | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Move the object's effects into its layer.

        Args:
            image: ``H×W×3`` composite ``C`` in ``[0, 1]``.
            alpha: ``H×W`` object alpha.
            foreground: ``H×W×3`` straight object colour.
            background: ``H×W×3`` complete background (holding the effect).
            prompt: unused (kept for the role's interface).

        Returns:
            ``(alpha', F', B')``: the layer's alpha and colour (object over its effects) and
            the cleaned background; unchanged inputs when nothing is found. :attr:`last` lists
            the effects found.
        """
        self.last, self.trace = [], {}
        a = np.clip(alpha.astype(np.float32), 0.0, 1.0)
        f = foreground.astype(np.float32)
        b = background.astype(np.float32)
        if alpha_bbox(a, 0.5) is None:
            return a, f, b
        for kind in ("reflection", "shadow"):
            if kind not in self.effects:
                continue
            est = self._reflection(image, a, f, b) if kind == "reflection" else self._shadow(a, b)
            if est is None:
                continue
            self.last.append(est)
            e = est.alpha[..., None]
            a_new = a + (1.0 - a) * est.alpha
            prem = a[..., None] * f + (1.0 - a[..., None]) * e * est.color
            f = np.divide(prem, a_new[..., None], out=np.zeros_like(prem), where=a_new[..., None] > 1e-6)
            a, b = a_new, est.background
        return a.astype(np.float32), np.clip(f, 0.0, 1.0).astype(np.float32), np.clip(b, 0.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------ geometry
    def _region(self, alpha: np.ndarray, up: float, down: float) -> tuple[tuple[int, int, int, int], float]:
        h, w = alpha.shape
        x0, y0, x1, y1 = alpha_bbox(alpha, 0.02)  # type: ignore[misc]
        oh = float(y1 - y0)
        r = self.reach * oh
        box = (max(0, int(x0 - r)), max(0, int(y0 - up * oh)), min(w, int(x1 + r)), min(h, int(y1 + down * oh)))
        return box, min(1.0, self.work_side / max(oh, 1.0))

    # ------------------------------------------------------------------ shadow
    def _shadow(self, alpha: np.ndarray, background: np.ndarray) -> EffectEstimate | None:
        (x0, y0, x1, y1), k = self._region(alpha, 0.8, 0.6)
        a_roi, b_roi = alpha[y0:y1, x0:x1], background[y0:y1, x0:x1]
        hh, ww = a_roi.shape
        sw, sh = max(8, int(round(ww * k))), max(8, int(round(hh * k)))
        a_w = cv2.resize(a_roi, (sw, sh), interpolation=cv2.INTER_AREA)
        b_w = cv2.resize(b_roi, (sw, sh), interpolation=cv2.INTER_AREA)
        sil = (a_w > 0.5).astype(np.float32)
        box = alpha_bbox(sil)
        if box is None:
            return None
        oh = float(box[3] - box[1])
        yb = float(box[3] - 1)
        obj = cv2.dilate((a_w > 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        y_w = _median(_luma(b_w), _odd(self.median_ratio * oh))
        log_y = np.log(y_w + 1.0 / 255.0)
        ring_k = np.ones((_odd(0.12 * oh), _odd(0.12 * oh)), np.uint8)
        sil_ring = cv2.dilate(sil.astype(np.uint8), ring_k)
        area = float(sil.sum())

        def score(sx: float, sy: float) -> tuple[float, np.ndarray] | None:
            m = np.array([[1.0, -sx, sx * yb], [0.0, -sy, yb * (1.0 + sy)]])
            proj = cv2.warpAffine(sil, m, (sw, sh), flags=cv2.INTER_NEAREST) > 0.5
            vis = proj & ~obj
            if vis.sum() < 0.04 * area:
                return None
            ring = cv2.warpAffine(sil_ring, m, (sw, sh), flags=cv2.INTER_NEAREST).astype(bool) & ~proj & ~obj
            if ring.sum() < 0.04 * area:
                return None
            lr = log_y[ring]
            return float((lr.mean() - log_y[vis].mean()) / (0.05 + lr.std())), vis

        coarse = []
        for sy in (-0.55, -0.42, -0.31, -0.22, -0.15, -0.1, 0.12, 0.2, 0.28):
            for sx in np.linspace(-1.35, 1.35, 19):
                r = score(float(sx), sy)
                if r is not None:
                    coarse.append((r[0], float(sx), sy))
        coarse.sort(reverse=True)
        self.trace["shadow_contrast"] = coarse[0][0] if coarse else 0.0
        best: tuple[float, float, float] | None = None
        for _, sx0, sy0 in coarse[: self.candidates]:
            for sx in np.linspace(sx0 - 0.075, sx0 + 0.075, 5):
                for sy in np.linspace(sy0 - 0.04, sy0 + 0.04, 5):
                    r = score(float(sx), float(sy))
                    if r is not None and (best is None or r[0] > best[0]):
                        best = (r[0], float(sx), float(sy))
        if best is not None:  # a finer step around the winner
            _, sx0, sy0 = best
            for sx in np.linspace(sx0 - 0.03, sx0 + 0.03, 5):
                for sy in np.linspace(sy0 - 0.016, sy0 + 0.016, 5):
                    r = score(float(sx), float(sy))
                    if r is not None and r[0] > best[0]:
                        best = (r[0], float(sx), float(sy))
        if best is None or best[0] < self.min_contrast:
            return None
        z, sx, sy = best
        self.trace.update(shadow_z=z, shadow_sx=sx, shadow_sy=sy)
        fit = self._fit(a_w, y_w, obj, sx, sy, yb, oh, 1.0)
        if fit is None:
            return None
        strength, fade, sig0, sig1, keep = fit
        # a shadow keeps the ground's chromaticity across its edge (a dark neighbour has its own colour)
        chroma = b_w / np.maximum(b_w.sum(axis=2, keepdims=True), 1e-3)
        band = np.ones((_odd(0.08 * oh), _odd(0.08 * oh)), np.uint8)
        k8 = keep.astype(np.uint8)
        inner = keep & ~cv2.erode(k8, band).astype(bool)
        outer = cv2.dilate(k8, band).astype(bool) & ~keep & ~obj
        if not inner.any() or not outer.any():
            return None
        shift = float(np.abs(np.median(chroma[inner], axis=0) - np.median(chroma[outer], axis=0)).sum())
        self.trace["shadow_chroma_shift"] = shift
        if shift > self.max_chroma_shift:
            return None
        # full resolution: the fitted model, so the ground's texture is kept exactly (B / (1 − a))
        box_f = alpha_bbox((a_roi > 0.5).astype(np.float32))
        yb_f = float(box_f[3] - 1)  # type: ignore[index]
        soft, dist = self._soft_shadow((a_roi > 0.5).astype(np.float32), sx, sy, yb_f, sig0 / k, sig1 / k, oh / k)
        a_full = np.clip(strength * soft * (1.0 - fade * dist), 0.0, 1.0)
        a_full = np.minimum(a_full, 1.0 - b_roi.max(axis=2)).astype(np.float32)  # keeps B / (1 − a) within [0, 1]
        out_a = np.zeros(alpha.shape, np.float32)
        out_a[y0:y1, x0:x1] = a_full
        clean = background.copy()
        clean[y0:y1, x0:x1] = b_roi / np.maximum(1.0 - a_full[..., None], 1e-3)
        return EffectEstimate("shadow", out_a, np.zeros_like(background), np.clip(clean, 0.0, 1.0), z)

    @staticmethod
    def _soft_shadow(sil: np.ndarray, sx: float, sy: float, yb: float, sig0: float, sig1: float,
                     oh: float) -> tuple[np.ndarray, np.ndarray]:
        """Projected silhouette blurred by ``sig0 + sig1·d`` (``d`` = height above the contact / object
        height, carried along by the projection) → ``(soft mask, d)``, both ``H×W`` in ``[0, 1]``."""
        h, w = sil.shape
        m = np.array([[1.0, -sx, sx * yb], [0.0, -sy, yb * (1.0 + sy)]])
        proj = cv2.warpAffine(sil, m, (w, h), flags=cv2.INTER_LINEAR)
        ys = np.arange(h, dtype=np.float32)[:, None].repeat(w, axis=1)
        dist = cv2.warpAffine(np.clip((yb - ys) / max(oh, 1.0), 0.0, 1.0), m, (w, h), flags=cv2.INTER_LINEAR)
        sigmas = np.linspace(max(sig0, 0.3), max(sig0, 0.3) + max(sig1, 0.0), 3)
        wide = cv2.GaussianBlur(proj, (0, 0), float(sigmas[-1]))
        d = np.clip(cv2.GaussianBlur(proj * dist, (0, 0), float(sigmas[-1])) / np.maximum(wide, 1e-4), 0.0, 1.0)
        levels = np.stack([cv2.GaussianBlur(proj, (0, 0), float(s)) for s in sigmas])
        pos = d * (len(sigmas) - 1)
        lo = np.clip(np.floor(pos).astype(int), 0, len(sigmas) - 2)
        t = pos - lo
        soft = (1 - t) * np.take_along_axis(levels, lo[None], 0)[0] + t * np.take_along_axis(levels, lo[None] + 1, 0)[0]
        return soft.astype(np.float32), d.astype(np.float32)

    def _fit(self, a_w: np.ndarray, y_w: np.ndarray, obj: np.ndarray, sx: float, sy: float, yb: float, oh: float,
             k: float) -> tuple[float, float, float, float, np.ndarray] | None:
        """Fit strength, fade and penumbra of the projected shadow to the luminance ratio against
        the ground around it (least squares on ``1 − Y / Ŷ``); None when a test fails.

        Returns:
            ``(strength, fade, sigma0, sigma1, region)`` with sigmas in work pixels.
        """
        sil = (a_w > 0.5).astype(np.float32)
        soft0, _ = self._soft_shadow(sil, sx, sy, yb, 0.5, 0.0, oh)
        grow = cv2.dilate((soft0 > 0.05).astype(np.uint8), np.ones((_odd(0.25 * oh), _odd(0.25 * oh)), np.uint8)).astype(bool)
        hole = grow | obj
        if hole.all():
            return None
        y_hat = np.maximum(_fill(y_w, hole), 1e-3)
        target = 1.0 - np.clip(y_w / y_hat, 0.0, 1.2)
        sel = grow & ~obj
        if sel.sum() < 16:  # the projected shadow lies behind the object: nothing to fit
            return None
        t = target[sel]
        best = None
        for s0 in (0.6, 1.2):
            for s1 in (0.0, 0.03, 0.06):
                soft, dist = self._soft_shadow(sil, sx, sy, yb, s0, s1 * oh, oh)
                p, q = soft[sel], (soft * dist)[sel]
                g = np.array([[p @ p, -(p @ q)], [-(p @ q), q @ q]])
                rhs = np.array([p @ t, -(q @ t)])
                try:
                    sol = np.linalg.solve(g + 1e-6 * np.eye(2), rhs)
                except np.linalg.LinAlgError:
                    continue
                strength, sf = float(sol[0]), float(sol[1])
                if strength > 1e-6 and not 0.0 <= sf / strength <= 0.5:  # refit the strength with the fade clamped
                    f_c = float(np.clip(sf / strength, 0.0, 0.5))
                    basis = p - f_c * q
                    strength, sf = float(basis @ t / max(basis @ basis, 1e-9)), f_c * float(basis @ t / max(basis @ basis, 1e-9))
                fade = float(np.clip(sf / strength, 0.0, 0.5)) if strength > 1e-6 else 0.0
                pred = strength * p * (1.0 - fade * (q / np.maximum(p, 1e-6)))
                res = float(((t - pred) ** 2).sum())
                if best is None or res < best[0]:
                    best = (res, strength, fade, s0, s1 * oh, soft)
        if best is None:
            return None
        res, strength, fade, s0, s1, soft = best
        # the strength against the ground right next to the shadow (the inpainted estimate is biased
        # by brighter or darker structure further away): medians of log-luminance, core vs ring
        core = (soft > 0.7) & ~obj
        ring = cv2.dilate((soft > 0.05).astype(np.uint8), np.ones((_odd(0.12 * oh), _odd(0.12 * oh)), np.uint8)).astype(bool)
        ring &= (soft <= 0.05) & ~obj
        if core.sum() >= 8 and ring.sum() >= 8:
            log_y = np.log(y_w + 1.0 / 255.0)
            local = 1.0 - float(np.exp(np.median(log_y[core]) - np.median(log_y[ring])))
            strength = min(strength, max(local, 0.0))
        total = float(((t - t.mean()) ** 2).sum())
        r2 = 1.0 - res / max(total, 1e-9)
        self.trace.update(shadow_darkening=strength, shadow_r2=r2)
        if strength < self.min_darkening or r2 < self.min_r2:
            return None
        return strength, fade, s0, s1, (soft > 0.3) & ~obj
