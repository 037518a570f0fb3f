"""Reflection part of :class:`~layerkit.modules.effects.shadow_reflection.ShadowReflectionEffects`.

The object flipped about its lowest row, per row shifted (ripple) and attenuated:
``C = (1 − k·ρ)·B̂ + k·d·ρ·R`` with ``R, ρ`` the mirrored colour and alpha; ``k`` and ``d`` fitted
per row by least squares against the smooth inpainted surface (experimental: see docs/lasagna.md).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from layerkit.modules.effects.common import EffectEstimate
from layerkit.modules.effects.common import fill as _fill
from layerkit.types import alpha_bbox


class ReflectionMixin:
    """``_reflection`` for a stage with ``work_side``, ``ripple``, ``min_explained``, ``min_dim`` and ``trace``."""

    work_side: int
    ripple: int
    min_explained: float
    min_dim: float
    trace: dict[str, Any]

    # ------------------------------------------------------------------ reflection
    def _reflection(self, image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                    background: np.ndarray) -> EffectEstimate | None:
        h, w = alpha.shape
        x0, y0, x1, y1 = alpha_bbox(alpha, 0.5)  # type: ignore[misc]
        oh = y1 - y0
        yb = y1 - 1
        length = min(oh, h - y1)
        if length < 4:
            return None
        k = min(1.0, self.work_side / max(oh, 1))
        pad = int(0.1 * (x1 - x0)) + self.ripple + 2
        rx0, rx1 = max(0, x0 - pad), min(w, x1 + pad)
        rows = np.arange(y1, y1 + length)
        src = 2 * yb + 1 - rows
        ok = src >= 0
        rows, src = rows[ok], src[ok]
        mir_a = alpha[src, rx0:rx1]
        mir_f = foreground[src, rx0:rx1]
        region = np.zeros((h, w), bool)
        region[rows[0]:rows[-1] + 1, rx0:rx1] = cv2.dilate((mir_a > 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if region.sum() < 16:
            return None
        # smooth surface estimate from around the candidate (work size for speed)
        ry0, ry1 = rows[0], rows[-1] + 1
        bx0, bx1 = max(0, rx0 - pad * 2), min(w, rx1 + pad * 2)
        by1 = min(h, ry1 + pad)
        sub_b, sub_hole = background[ry0:by1, bx0:bx1], region[ry0:by1, bx0:bx1]
        sh_, sw_ = sub_b.shape[:2]
        tw, th = max(8, int(sw_ * k)), max(8, int(sh_ * k))
        small = cv2.resize(sub_b, (tw, th), interpolation=cv2.INTER_AREA)
        hole_s = cv2.resize(sub_hole.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST).astype(bool)
        if hole_s.all():
            return None
        surf = cv2.resize(_fill(small, hole_s), (sw_, sh_), interpolation=cv2.INTER_LINEAR)
        b_hat = surf[:, rx0 - bx0:rx1 - bx0][: len(rows)]
        c = image[rows, rx0:rx1].astype(np.float32)
        d = c - b_hat
        # per row, per shift: least squares C − B̂ ≈ −u·ρ·B̂ + v·ρ·R
        best_res = np.full(len(rows), np.inf)
        best = np.zeros((len(rows), 3))
        for s in range(-self.ripple, self.ripple + 1):
            ra, rf = np.roll(mir_a, s, axis=1), np.roll(mir_f, s, axis=1)
            p = -(ra[..., None] * b_hat)
            q = ra[..., None] * rf
            spp, sqq, spq = (p * p).sum((1, 2)), (q * q).sum((1, 2)), (p * q).sum((1, 2))
            spd, sqd = (p * d).sum((1, 2)), (q * d).sum((1, 2))
            det = spp * sqq - spq ** 2
            u = np.divide(sqq * spd - spq * sqd, det, out=np.zeros_like(det), where=det > 1e-9)
            v = np.divide(spp * sqd - spq * spd, det, out=np.zeros_like(det), where=det > 1e-9)
            u, v = np.clip(u, 0.0, 1.0), np.clip(v, 0.0, 1.0)
            res = ((d - u[:, None, None] * p - v[:, None, None] * q) ** 2).sum((1, 2))
            better = res < best_res
            best_res = np.where(better, res, best_res)
            best[better] = np.stack([u, v, np.full_like(u, s)], axis=1)[better]
        m = region[rows, rx0:rx1]
        total = float((d ** 2 * m[..., None]).sum())
        explained = 1.0 - float(best_res.sum()) / max(float((d ** 2).sum()), 1e-9)
        wts = mir_a.sum(axis=1)
        k_mean = float((best[:, 0] * wts).sum() / max(wts.sum(), 1e-6))
        dim = float((best[:, 1] * wts).sum() / max((best[:, 0] * wts).sum(), 1e-6))
        self.trace.update(reflection_explained=explained, reflection_k=k_mean, reflection_dim=dim)
        if total <= 1e-6 or explained < self.min_explained or k_mean < 0.05 or dim < self.min_dim:
            return None
        u = cv2.medianBlur(best[:, 0].astype(np.float32).reshape(-1, 1), 5).ravel()
        v = np.minimum(cv2.medianBlur(best[:, 1].astype(np.float32).reshape(-1, 1), 5).ravel(), u)
        ra = np.stack([np.roll(mir_a[i], int(best[i, 2])) for i in range(len(rows))])
        rf = np.stack([np.roll(mir_f[i], int(best[i, 2])) for i in range(len(rows))])
        e_a = np.clip(u[:, None] * ra, 0.0, 0.98)
        e_f = np.clip(np.divide(v, u, out=np.zeros_like(v), where=u > 1e-6)[:, None, None] * rf, 0.0, 1.0)
        b_old = background[rows, rx0:rx1]
        b_new = np.clip((c - e_a[..., None] * e_f) / (1.0 - e_a[..., None]), 0.0, 1.0)
        # colour re-solved against the clipped background: the stack recomposes C exactly
        e_f = np.clip(np.divide(c - (1.0 - e_a[..., None]) * b_new, e_a[..., None], out=np.zeros_like(c),
                                where=e_a[..., None] > 1e-3), 0.0, 1.0)
        keep = alpha[rows, rx0:rx1] < 1e-3  # only where the object does not cover
        out_a = np.zeros((h, w), np.float32)
        out_f = np.zeros((h, w, 3), np.float32)
        clean = background.copy()
        out_a[rows, rx0:rx1] = np.where(keep, e_a, 0.0)
        out_f[rows, rx0:rx1] = np.where(keep[..., None], e_f, 0.0)
        clean[rows, rx0:rx1] = np.where(keep[..., None], b_new, b_old)
        return EffectEstimate("reflection", out_a, out_f, clean, explained)
