"""Shadow part of :class:`~layerkit.modules.effects.shadow_reflection.ShadowReflectionEffects`.

A cast shadow multiplies the ground by ``r = 1 − a`` (``a`` the shadow's alpha over black), so
in log-luminance it *adds* ``log(1 − a)`` to the ground's own ``log B̂``. The ground's texture is
the noise of every test here, and it is fought in the gradient domain:

* **Detection** (matched filter): for a candidate shadow mask ``P`` (the object's silhouette
  projected from its lowest row along a direction ``(sx, sy)``, a distant light on the ground
  plane), the least-squares drop across the mask's outline is
  ``c = Σ ∇L·∇P / Σ |∇P|²`` (``L`` = log-luminance). A shadow gives ``c ≈ log(1 − a) < 0`` along
  the whole outline; texture gives ``c ≈ 0`` with a spread ``σ_g / sqrt(Σ |∇P|²)``, ``σ_g`` the
  RMS gradient of the ground around the object. The score is ``z = −c / spread`` with ``c``
  pulled toward the drop of the median one of ``sectors`` parts of the outline (a shadow
  darkens all along it, a coincidence of texture one part), lowered by the same drop on the two
  chromaticity channels (a shadow keeps the ground's colour: a dark neighbouring object has its own). Slow illumination changes of the
  ground have no gradient along a small outline, so they do not bias ``c``.
* **Strength** (:func:`~layerkit.modules.effects.shadow_model.matched_strength`): a shadow keeps the ground's chromaticity, so each
  pixel of the candidate's core is compared with the lit ring around it *in the same
  chromaticity bin* (the same material); the strength (near the contact and far from it: the
  fade) makes the median corrected difference zero. The share of core pixels darker than their
  match and the share that found one (a dark neighbour of another colour finds none) decide,
  with the outline's own edge (:meth:`ShadowMixin._fit`, a robust fit of ``∇log(1 − a)`` to
  ``∇L`` that also picks the penumbra), whether it is a shadow.
* **Removal**: ``B̂ = B / (1 − a)`` with ``a`` the fitted model at full resolution: the ground
  is divided by a smooth shading field, so its texture stays. Under the object, which the
  decomposer filled from the shadowed ground, the background is filled again from the cleaned one.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from layerkit.modules.effects.common import EffectEstimate
from layerkit.modules.effects.common import fill as _fill
from layerkit.modules.effects.common import luma as _luma
from layerkit.modules.effects.shadow_model import (
    SX_GRID,
    SY_GRID,
    affine,
    grad,
    matched_strength,
    projected_box,
    region_fit,
    soft_shadow,
)
from layerkit.types import alpha_bbox


class ShadowMixin:
    """``_shadow`` for a stage with ``work_side``, ``reach``, ``min_darkening``, ``min_contrast``,
    ``max_chroma_shift``, ``chroma_weight`` and ``trace``."""

    work_side: int
    reach: float
    min_darkening: float
    min_contrast: float
    max_chroma_shift: float
    chroma_weight: float
    fit_tau: float
    sectors: int
    candidates: int
    chroma_bin: float
    min_dark_share: float
    min_cover: float
    min_edge: float
    core_level: float
    max_drop: float
    polish: bool
    polish_joint: bool
    region_fallback: bool
    chroma_noise: float
    drop_penalty: float
    trace: dict[str, Any]
    #: the grids of :meth:`_polish` (steps in ``sx``, ``sy``; 3×3 each, again around a side that wins, up to ``POLISH_MOVES`` times)
    POLISH_STEPS: tuple[tuple[float, float], ...] = ((0.12, 0.06), (0.05, 0.025), (0.02, 0.01))
    POLISH_MOVES = 3

    def _roi(self, alpha: np.ndarray) -> tuple[tuple[int, int, int, int], float]:
        h, w = alpha.shape
        x0, y0, x1, y1 = alpha_bbox(alpha, 0.02)  # type: ignore[misc]
        oh = float(y1 - y0)
        r = self.reach * oh
        below = max(0.6, 0.3 + self.max_drop) * oh
        box = (max(0, int(x0 - r)), max(0, int(y0 - 0.8 * oh)), min(w, int(x1 + r)), min(h, int(y1 + below)))
        return box, min(1.0, self.work_side / max(oh, 1.0))

    def _shadow(self, alpha: np.ndarray, background: np.ndarray) -> EffectEstimate | None:
        (x0, y0, x1, y1), k = self._roi(alpha)
        a_roi, b_roi = alpha[y0:y1, x0:x1], background[y0:y1, x0:x1]
        hh, ww = a_roi.shape
        sw, sh = max(8, int(round(ww * k))), max(8, int(round(hh * k)))
        a_w = cv2.resize(a_roi, (sw, sh), interpolation=cv2.INTER_AREA)
        b_w = cv2.resize(b_roi, (sw, sh), interpolation=cv2.INTER_AREA)
        sil = (a_w > 0.5).astype(np.float32)
        box = alpha_bbox(sil)
        if box is None:
            return None
        oh, yb = float(box[3] - box[1]), float(box[3] - 1)
        obj = cv2.dilate((a_w > 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        eps = 1.0 / 255.0
        logs = np.log(cv2.GaussianBlur(b_w, (0, 0), 0.7) + eps)
        lum = np.log(_luma(np.exp(logs) - eps).clip(0, None) + eps)
        u, v = logs[..., 0] - logs[..., 1], logs[..., 2] - logs[..., 1]
        g_l, g_u, g_v = grad(lum), grad(u), grad(v)
        free = (~obj).astype(np.float32)
        area = float(sil.sum())

        g2 = g_l[0] ** 2 + g_l[1] ** 2
        sig = float(np.sqrt(np.mean(g2[~obj]))) if (~obj).any() else 1.0  # the ground's RMS gradient
        sig_ch = 1.0  # the same of its chromaticity, only where chroma_noise reads it
        if self.chroma_noise and (~obj).any():
            sig_ch = float(np.sqrt(np.mean((g_u[0] ** 2 + g_u[1] ** 2 + g_v[0] ** 2 + g_v[1] ** 2)[~obj])))
        cx0 = 0.5 * (box[0] + box[2])

        gall = np.stack([g_l[0], g_l[1], g_u[0], g_u[1], g_v[0], g_v[1]], axis=-1).reshape(-1, 6)

        def score(sx: float, sy: float, dl: float = 0.0) -> tuple[float, float, float] | None:
            yc = yb + dl  # the contact row (below the matte's lowest row when the matte misses it)
            m = affine(sx, sy, yc)
            # the projected silhouette only where it can be (its box's corners, a margin for the blur)
            cb = projected_box(box, m, (sh, sw), 5)
            if cb is None:
                return None
            ox, oy, ex, ey = cb
            m[0, 2] -= ox
            m[1, 2] -= oy
            p = cv2.GaussianBlur(cv2.warpAffine(sil, m, (ex - ox, ey - oy), flags=cv2.INTER_LINEAR), (0, 0), 1.0)
            fr = free[oy:ey, ox:ex]
            if float((p * fr).sum()) < 0.04 * area:
                return None
            px, py = grad(p)
            cw = ex - ox
            px, py = px.ravel(), py.ravel()
            loc = np.flatnonzero((fr.ravel() > 0) & ((np.abs(px) + np.abs(py)) > 1e-4))  # the outline only
            fx, fy = px[loc], py[loc]
            wgt = fx * fx + fy * fy
            energy = float(wgt.sum())
            if energy < 1e-3 * oh:
                return None
            yy, xx = loc // cw + oy, loc % cw + ox
            g = gall[yy * sw + xx]
            dots = g[:, 0::2] * fx[:, None] + g[:, 1::2] * fy[:, None]  # (n, 3): L, u, v
            # the drop per sector of the outline (around the shadow's centre): a shadow darkens all
            # along it, a coincidence of the ground's texture on one part only
            ang = np.arctan2(yy - (yc + sy * 0.5 * oh), xx - (cx0 + sx * 0.5 * oh))
            sector = ((ang + np.pi) * (self.sectors / (2 * np.pi))).astype(np.int32).clip(0, self.sectors - 1)
            e_s = np.bincount(sector, wgt, self.sectors)
            d_l = np.bincount(sector, dots[:, 0], self.sectors)
            tot = dots.sum(axis=0)
            c_l = float(tot[0]) / energy
            c_ch = float(abs(tot[1]) + abs(tot[2])) / energy
            used = e_s > 0.05 * energy
            per = np.sort(d_l[used] / e_s[used])  # most negative first
            c_med = float(per[len(per) // 2]) if len(per) else 0.0  # the median sector's drop
            spread = (sig + 0.01) / np.sqrt(energy)
            z = (-min(c_l, 0.5 * c_l + 0.5 * c_med) - self.chroma_weight * c_ch) / spread
            # the chromaticity shift beyond what the ground's colour texture gives by chance (chroma_noise)
            c_ch = max(0.0, c_ch - self.chroma_noise * (sig_ch + 0.01) / np.sqrt(energy))
            return z, c_l, c_ch

        # the contact row: the matte's lowest row, or lower (a matte that misses the legs or the
        # trunk that touch the ground projects the shadow from the wrong row)
        refined = self._candidates(score, oh)
        for z, sx, sy, dl in sorted(refined, reverse=True):
            if z < self.min_contrast:
                break
            yc = yb + dl
            _, c_l, c_ch = score(sx, sy, dl)  # type: ignore[misc]
            self.trace.update(shadow_z=z, shadow_sx=sx, shadow_sy=sy, shadow_contact_drop=dl / oh, shadow_drop=c_l,
                              shadow_chroma_shift=c_ch)
            if c_ch > self.max_chroma_shift * max(-c_l, 1e-3):
                continue
            soft, dist = soft_shadow(sil, sx, sy, yc, 0.6, 0.03 * oh, oh)
            m = matched_strength(lum, u, v, soft, dist, obj, oh, self.chroma_bin)
            if m is None:
                continue
            strength, fade, dark, cover = m
            self.trace.update(shadow_darkening=strength, shadow_fade=fade, shadow_dark_share=dark, shadow_cover=cover)
            if strength < self.min_darkening or dark < self.min_dark_share or cover < self.min_cover:
                continue
            edge, sig0, sig1 = self._fit(sil, lum, obj, sx, sy, yc, oh, fade)
            # the fitted penumbra's sigmas at the contact and one object height away (full-resolution pixels)
            self.trace.update(shadow_edge=edge, shadow_sigma0=sig0 / k, shadow_sigma1=(sig0 + sig1) / k)
            if edge < self.min_edge * strength:
                continue
            if self.polish:  # the direction that the whole model (strength, fade, penumbra) explains best
                sx, sy = self._polish(sil, lum, obj, sx, sy, yc, oh, strength, fade, sig0, sig1)
                self.trace.update(shadow_sx=sx, shadow_sy=sy)
            if self.core_level != 0.5:  # the strength again, on the fitted penumbra's inner core
                strength, fade = self._strength_again(sil, lum, u, v, obj, sx, sy, yc, oh, sig0, sig1, edge,
                                                      strength, fade)
            return self._remove(alpha, background, (x0, y0, x1, y1), k, oh, sx, sy, strength, fade, sig0, sig1, z,
                                dl)
        return None

    def _candidates(self, score: Any, oh: float) -> list[tuple[float, float, float, float]]:
        """The coarse grid of directions (and contact rows, with ``max_drop``) scored by ``score``;
        up to :attr:`candidates` distinct ones above ``min_contrast``, each refined
        (:meth:`_refine`) → ``(z, sx, sy, drop)``. Records the best coarse score as ``shadow_contrast``."""
        n_drop = int(round(self.max_drop / 0.25)) + 1 if self.max_drop > 0 else 1
        drops = np.linspace(0.0, self.max_drop * oh, n_drop) if n_drop > 1 else np.zeros(1)
        coarse = []
        for dl in drops:
            for sy in SY_GRID:
                for sx in SX_GRID:
                    r = score(sx, sy, float(dl))
                    if r is not None:
                        coarse.append((r[0] - self.drop_penalty * dl / oh, sx, sy, float(dl)))
        coarse.sort(reverse=True)
        self.trace["shadow_contrast"] = coarse[0][0] if coarse else 0.0
        seeds: list[tuple[float, float, float, float]] = []
        for c in coarse:  # distinct directions, best first
            if c[0] >= self.min_contrast and all(abs(c[1] - q[1]) > 0.2 or abs(c[2] - q[2]) > 0.1
                                                 or abs(c[3] - q[3]) > 0.2 * oh for q in seeds):
                seeds.append(c)
            if len(seeds) >= self.candidates:
                break
        return [self._refine(score, seed, oh, self.drop_penalty, n_drop > 1) for seed in seeds]

    def _strength_again(self, sil: np.ndarray, lum: np.ndarray, u: np.ndarray, v: np.ndarray, obj: np.ndarray,
                        sx: float, sy: float, yc: float, oh: float, sig0: float, sig1: float, edge: float,
                        strength: float, fade: float) -> tuple[float, float]:
        """Strength and fade matched again on the fitted penumbra's inner core (``core_level``); without
        a core (a thin, blurred shadow) and with ``region_fallback``, the whole region's fit
        (:func:`~layerkit.modules.effects.shadow_model.region_fit`) held to the outline's own edge as the first match was (``min_edge``);
        else the first match's ``strength`` and ``fade``."""
        soft, dist = soft_shadow(sil, sx, sy, yc, sig0, sig1, oh)
        again = matched_strength(lum, u, v, soft, dist, obj, oh, self.chroma_bin, self.core_level)
        if again is not None:
            strength, fade = again[0], again[1]
        elif self.region_fallback:
            fit = region_fit(sil, lum, u, v, obj, sx, sy, yc, oh, sig0, sig1, self.chroma_bin)
            if fit is not None:
                strength, fade = min(fit[0], edge / max(self.min_edge, 1e-3)), fit[1]
                self.trace.update(shadow_region_fit=1.0)
        self.trace.update(shadow_darkening=strength, shadow_fade=fade)
        return strength, fade

    @staticmethod
    def _refine(score: Any, seed: tuple[float, float, float, float], oh: float, penalty: float,
                contact: bool) -> tuple[float, float, float, float]:
        """Two finer grid steps around a coarse direction (and contact row) → ``(z, sx, sy, drop)``."""
        best = seed
        for step_x, step_y, step_d in ((0.07, 0.04, 0.1), (0.03, 0.015, 0.05)):
            _, sx0, sy0, dl0 = best
            dls = [dl0 + f * step_d * oh for f in (-1.0, 0.0, 1.0)] if contact else [dl0]
            for dl in dls:
                if dl < 0:
                    continue
                for sx in np.linspace(sx0 - step_x, sx0 + step_x, 5):
                    for sy in np.linspace(sy0 - step_y, sy0 + step_y, 5):
                        if abs(sy) < 0.05:
                            continue
                        r = score(float(sx), float(sy), float(dl))
                        if r is not None and r[0] - penalty * dl / oh > best[0]:
                            best = (r[0] - penalty * dl / oh, float(sx), float(sy), float(dl))
        return best

    def _remove(self, alpha: np.ndarray, background: np.ndarray, roi: tuple[int, int, int, int], k: float, oh: float,
                sx: float, sy: float, strength: float, fade: float, sig0: float, sig1: float, z: float,
                drop: float = 0.0) -> EffectEstimate:
        """The model at full resolution: the shadow's alpha and ``B / (1 − a)`` (the ground's texture kept)."""
        x0, y0, x1, y1 = roi
        a_roi, b_roi = alpha[y0:y1, x0:x1], background[y0:y1, x0:x1]
        box_f = alpha_bbox((a_roi > 0.5).astype(np.float32))
        yb_f = float(box_f[3] - 1) + drop / k  # type: ignore[index]
        soft, dist = soft_shadow((a_roi > 0.5).astype(np.float32), sx, sy, yb_f, sig0 / k, sig1 / k, oh / k)
        a_full = np.clip(strength * soft * (1.0 - fade * dist), 0.0, 1.0)
        a_full = np.minimum(a_full, 1.0 - b_roi.max(axis=2)).astype(np.float32)  # keeps B / (1 − a) within [0, 1]
        out_a = np.zeros(alpha.shape, np.float32)
        out_a[y0:y1, x0:x1] = a_full
        clean = background.copy()
        c_roi = np.clip(b_roi / np.maximum(1.0 - a_full[..., None], 1e-3), 0.0, 1.0)
        # under the object the background was filled from the shadowed ground around it: fill it
        # again from the cleaned ground (harmonic, as the classical decomposer does)
        hole = a_roi > 0.5
        refilled = np.zeros(alpha.shape, bool)
        if hole.any() and (a_full[hole] > 0.02).any():
            c_roi = _fill(c_roi, hole)
            refilled[y0:y1, x0:x1] = hole
        clean[y0:y1, x0:x1] = c_roi
        return EffectEstimate("shadow", out_a, np.zeros_like(background), np.clip(clean, 0.0, 1.0), z,
                              refilled if refilled.any() else None)

    def _polish(self, sil: np.ndarray, lum: np.ndarray, obj: np.ndarray, sx: float, sy: float, yc: float, oh: float,
                strength: float, fade: float, sig0: float, sig1: float) -> tuple[float, float]:
        """Direction refined by the robust fit of the whole model's ``∇log(1 − a)`` to ``∇L``.

        The matched filter weighs the outline's sharp parts; a long shadow's far end is blurred
        (the penumbra grows with the distance), so its direction is fitted again with the
        strength, fade and penumbra found: the Cauchy residual over the model's band, relative
        to no shadow there (bands of different directions compare), is minimised on two finer grids.
        """
        return self._descend(self._polish_cost(sil, lum, obj, yc, oh, strength, fade, sig0, sig1), sx, sy)

    def _descend(self, cost: Any, sx: float, sy: float) -> tuple[float, float]:
        """The direction of least ``cost`` on 3×3 grids of :attr:`POLISH_STEPS` around ``(sx, sy)``."""
        best = (cost(sx, sy), sx, sy)
        for step_x, step_y in self.POLISH_STEPS:
            for _ in range(self.POLISH_MOVES):  # the 3×3 grid again around a side that won
                _, sx0, sy0 = best
                for qx in (sx0 - step_x, sx0, sx0 + step_x):
                    for qy in (sy0 - step_y, sy0, sy0 + step_y):
                        if (qx, qy) == (sx0, sy0) or abs(qy) < 0.05 or (qy > 0) != (sy0 > 0):
                            continue
                        c = cost(float(qx), float(qy))
                        if c < best[0]:
                            best = (c, float(qx), float(qy))
                if (best[1], best[2]) == (sx0, sy0):
                    break
        return best[1], best[2]

    def _polish_cost(self, sil: np.ndarray, lum: np.ndarray, obj: np.ndarray, yc: float, oh: float, strength: float,
                     fade: float, sig0: float, sig1: float) -> Any:
        """The cost of :meth:`_polish`: ``(sx, sy) →`` the whole model's Cauchy residual on ``∇L``, relative to no shadow."""
        gl = grad(lum)
        tau2 = self.fit_tau ** 2

        sb = alpha_bbox(sil)
        margin = int(np.ceil(3.0 * (sig0 + sig1))) + 3
        scales = strength * np.linspace(0.7, 1.3, 7)  # polish_joint: each direction with its best strength

        def cost(qx: float, qy: float) -> float:
            cb = projected_box(sb, affine(qx, qy, yc), sil.shape, margin)  # type: ignore[arg-type]
            if cb is None:
                return np.inf
            soft, dist = soft_shadow(sil, qx, qy, yc, sig0, sig1, oh, cb)
            m = soft * (1.0 - fade * dist)
            gm = grad(np.log(1.0 - np.clip(strength * m, 0.0, 0.95)))
            win = (slice(cb[1], cb[3]), slice(cb[0], cb[2]))
            band = ((np.abs(gm[0]) + np.abs(gm[1])) > 1e-4) & ~obj[win]
            if band.sum() < 16:
                return np.inf
            lx, ly = gl[0][win][band], gl[1][win][band]
            if self.polish_joint:  # ∇log(1 − s·m) = −s·∇m / (1 − s·m), for each strength tried
                gs = grad(m)
                mb, mx, my = m[band], gs[0][band], gs[1][band]
                den = 1.0 - np.minimum(scales[:, None] * mb[None], 0.95)
                px, py = -scales[:, None] * mx[None] / den, -scales[:, None] * my[None] / den
                fit = float(np.log1p(((lx[None] - px) ** 2 + (ly[None] - py) ** 2) / tau2).sum(axis=1).min())
            else:
                fit = float(np.log1p(((lx - gm[0][band]) ** 2 + (ly - gm[1][band]) ** 2) / tau2).sum())
            return fit - float(np.log1p((lx ** 2 + ly ** 2) / tau2).sum())

        return cost

    def _fit(self, sil: np.ndarray, lum: np.ndarray, obj: np.ndarray, sx: float, sy: float, yb: float,
             oh: float, fade: float) -> tuple[float, float, float]:
        """Strength and penumbra of the outline alone: robust least squares on ``∇L`` over its band.

        The strength seen by the edge is biased low on textured ground (the ground's own edges
        crossing the band), so it serves as a check of the matched strength (an edge must be
        there) and to choose the penumbra.

        Returns:
            ``(strength, sigma0, sigma1)``, sigmas in work pixels.
        """
        gl = grad(lum)
        tau2 = self.fit_tau ** 2
        strengths = np.linspace(0.0, 0.9, 46)
        best = (np.inf, 0.0, 0.6, 0.03 * oh)
        for s0 in (0.6, 1.2):
            for s1 in (0.0, 0.02, 0.04, 0.06):
                soft, dist = soft_shadow(sil, sx, sy, yb, s0, s1 * oh, oh)
                band = (soft > 0.01) & (soft < 0.99) & ~obj
                if band.sum() < 16:
                    continue
                m = soft * (1.0 - fade * dist)
                gm = grad(m)
                mb, mx, my, lx, ly = m[band], gm[0][band], gm[1][band], gl[0][band], gl[1][band]
                # ∇log(1 − s·m) = −s·∇m / (1 − s·m), for every strength at once; Cauchy loss: the
                # ground's strong edges crossing the band are outliers
                den = 1.0 - strengths[:, None] * mb[None]
                px, py = -strengths[:, None] * mx[None] / den, -strengths[:, None] * my[None] / den
                res = np.log1p(((lx[None] - px) ** 2 + (ly[None] - py) ** 2) / tau2).sum(axis=1)
                res -= res[0]  # relative to no shadow (bands of different size compare)
                i = int(np.argmin(res))
                if res[i] < best[0]:
                    best = (float(res[i]), float(strengths[i]), s0, s1 * oh)
        return best[1], best[2], best[3]
