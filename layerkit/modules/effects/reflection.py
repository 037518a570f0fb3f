"""Reflection part of :class:`~layerkit.modules.effects.shadow_reflection.ShadowReflectionEffects`.

A reflection below an object (water, a glossy floor) is the object's visible colours mirrored
about its contact row, shifted per row by a ripple, attenuated and fading with the distance:

``B = (1 − a)·B̂ + a·κ·R'``, ``a = s·(1 − t/L)^p·ρ'``

with ``R', ρ'`` the object's colour and alpha mirrored (``ρ'(y, x) = α(2·y_b + 1 − y, x + δ_y)``),
``t`` the distance below the contact row ``y_b``, ``s`` the strength, ``κ`` the dimming and ``B̂``
the surface without the reflection. Detection:

1. ``B̂`` is estimated smoothly from the surface around the candidate (harmonic fill; the
   surface's own texture stays in the residual ``D = B − B̂`` as noise).
2. Per row, the shift ``δ_y ∈ [−ripple, ripple]`` that best correlates the mirrored pattern
   ``ρ'·(κ₀·R' − B̂)`` with the row's residual is chosen.
3. For a grid of fade lengths ``L`` and exponents ``p``, ``(s, s·κ)`` are fitted by linear
   least squares; the best fit gives the share of ``‖D‖²`` it explains.
4. **Null test**: the same fit with the object *not* mirrored (translated below itself) and
   mirrored but displaced sideways by half its width. Surface structure that just happens to lie
   under the object is explained about as well by those; a reflection only by the mirror. A
   reflection is kept when it explains ``≥ min_explained`` and ``≥ min_margin`` more than the best
   null, with ``κ ≥ min_dim`` (a mirrored *darkening* is a shadow).

Removal: ``a`` and the colour ``κ·R'`` from the fit, the background solved exactly,
``B' = (B − a·κR')/(1 − a)`` (texture kept), the colour re-solved against the clipped ``B'`` so
that the stack recomposes the input.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from layerkit.modules.effects.common import EffectEstimate
from layerkit.modules.effects.common import fill as _fill
from layerkit.types import alpha_bbox

_LENGTHS = tuple(np.round(np.arange(0.3, 1.001, 0.05), 2))  # fade length grid, in object heights
_POWERS = (1.0, 1.25, 1.5, 1.75, 2.0)  # fade exponent grid
_STEP = 1.0  # ripple shift step, pixels (0.5 was tried: no gain on TUNE, twice the time)
_KAPPA0 = 0.85  # dimming assumed while choosing the per-row shift


def _roll(x: np.ndarray, s: float) -> np.ndarray:
    """``x`` (``n×W[×3]``) shifted right by ``s`` pixels along its columns (linear interpolation)."""
    lo = int(np.floor(s))
    t = s - lo
    out = np.roll(x, lo, axis=1)
    return out if t == 0 else (1 - t) * out + t * np.roll(x, lo + 1, axis=1)


def _mirror_at(a: np.ndarray, f: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and straight colour of the candidate shifted by ``s`` (premultiplied interpolation)."""
    ra, pf = _roll(a, s), _roll(a[..., None] * f, s)
    return ra, np.divide(pf, ra[..., None], out=np.zeros_like(pf), where=ra[..., None] > 1e-6)


def _shift_rows(a: np.ndarray, f: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row ``i`` of the candidate ``(a, f)`` shifted by ``shifts[i]`` pixels."""
    ra, rf = np.empty_like(a), np.empty_like(f)
    for s in np.unique(shifts):
        rows = shifts == s
        ra[rows], rf[rows] = _mirror_at(a[rows], f[rows], float(s))
    return ra, rf


class ReflectionMixin:
    """``_reflection`` for a stage with ``work_side``, ``ripple``, ``min_explained``, ``min_margin``,
    ``min_dim`` and ``trace``."""

    work_side: int
    ripple: int
    min_explained: float
    min_margin: float
    min_dim: float
    contact: int
    kappa_prior: float
    max_out_of_range: float
    trace: dict[str, Any]

    def _fit_mirror(self, d: np.ndarray, bh: np.ndarray, ma: np.ndarray, mf: np.ndarray, dist: np.ndarray,
                    oh: int, ripple: int | None = None) -> dict[str, Any]:
        """Fit ``D ≈ f(t)·(−s·ρ'·B̂ + s·κ·ρ'·R')`` (see the module docstring).

        Args:
            d: ``n×W×3`` residual ``B − B̂`` of the rows below the contact.
            bh: ``n×W×3`` smooth surface ``B̂``.
            ma: ``n×W`` candidate alpha ``ρ`` (mirrored, or a null placement), unshifted.
            mf: ``n×W×3`` its colour.
            dist: ``n`` distances ``t ≥ 1`` of the rows below the contact row.
            oh: object height in pixels (fade lengths are shares of it).
            ripple: largest per-row shift searched (None: the stage's ``ripple``).

        Returns:
            dict with ``explained`` (share of ``‖D‖²`` over the candidate's support), ``s``,
            ``kappa``, ``L``, ``p`` and the per-row ``shifts``.
        """
        r = self.ripple if ripple is None else ripple
        best_sc = np.full(len(d), -np.inf)
        shifts = np.zeros(len(d))
        for s in np.arange(-r, r + 1e-6, _STEP):
            ra, rf = _mirror_at(ma, mf, float(s))
            pat = ra[..., None] * (_KAPPA0 * rf - bh)
            num, den = (pat * d).sum((1, 2)), (pat * pat).sum((1, 2))
            sc = np.where(num > 0, num ** 2 / np.maximum(den, 1e-9), 0.0)
            better = sc > best_sc
            best_sc[better], shifts[better] = sc[better], s
        ra, rf = _shift_rows(ma, mf, shifts)
        sup = cv2.dilate((np.maximum(ma, ra) > 0.02).astype(np.uint8), np.ones((3, 2 * r + 3), np.uint8)) > 0
        m = sup[..., None].astype(np.float32)
        total = float((d * d * m).sum())
        out: dict[str, Any] = {"explained": 0.0, "s": 0.0, "kappa": 0.0, "L": float(oh), "p": 1.0, "shifts": shifts,
                               "support": int(sup.sum())}
        if total <= 1e-9 or sup.sum() < 16:
            return out
        x1, x2 = -ra[..., None] * bh * m, ra[..., None] * rf * m
        dm = d * m
        # per-row sums: the fit for any fade profile f (one weight per row) is a weighted sum of them
        r11, r22, r12 = (x1 * x1).sum((1, 2)), (x2 * x2).sum((1, 2)), (x1 * x2).sum((1, 2))
        r1d, r2d = (x1 * dm).sum((1, 2)), (x2 * dm).sum((1, 2))
        for lf in _LENGTHS:
            for p in _POWERS:
                f = np.clip(1.0 - dist / (lf * oh), 0.0, None) ** p
                f2 = f * f
                s11, s22, s12 = float(f2 @ r11), float(f2 @ r22), float(f2 @ r12)
                s1d, s2d = float(f @ r1d), float(f @ r2d)
                # a weak prior κ ≈ KAPPA0 (ridge on u − v/KAPPA0): on dark ground the −ρ·B̂ basis is
                # small and u alone is ill-determined (TUNE 0004: u ran to its bound)
                lam = self.kappa_prior * (s11 + s22)
                t11, t22, t12 = s11 + lam, s22 + lam / _KAPPA0 ** 2, s12 - lam / _KAPPA0
                det = t11 * t22 - t12 ** 2
                if det <= 1e-12:
                    continue
                u = min(max((t22 * s1d - t12 * s2d) / det, 0.0), 0.98)
                v = min(max((t11 * s2d - t12 * s1d) / det, 0.0), u)  # κ ≤ 1: no brighter than the object
                res = total - 2 * u * s1d - 2 * v * s2d + u * u * s11 + v * v * s22 + 2 * u * v * s12
                ex = 1.0 - res / total
                if ex > out["explained"]:
                    out.update(explained=ex, s=u, kappa=v / max(u, 1e-9), L=lf * oh, p=p)
        return out

    # ------------------------------------------------------------------ reflection
    def _reflection(self, image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                    background: np.ndarray) -> EffectEstimate | None:
        h, w = alpha.shape
        x0, y0, x1, y1 = alpha_bbox(alpha, 0.5)  # type: ignore[misc]
        oh, ow = y1 - y0, x1 - x0
        yb = y1 - 1
        length = min(oh, h - y1)
        if length < max(8, 0.15 * oh):  # too few rows below the object to tell a mirror (dev30 0000)
            return None
        pad = ow // 2 + self.ripple + 2
        rx0, rx1 = max(0, x0 - pad), min(w, x1 + pad)
        rows = np.arange(y1, y1 + length)
        src = 2 * yb + 1 - rows
        rows = rows[src >= 0]

        def mirror(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """The object mirrored about row ``yb + t`` over ``rows``: alpha, colour, distances."""
            src_t = 2 * (yb + t) + 1 - rows
            valid = (src_t >= 0) & (src_t < h) & (rows > yb + t)
            src_t = np.clip(src_t, 0, h - 1)
            return (alpha[src_t, rx0:rx1] * valid[:, None], foreground[src_t, rx0:rx1],
                    (rows - yb - t).astype(np.float32))

        mir_a, mir_f, dist = mirror(0)
        region = np.zeros((h, w), bool)
        region[rows[0]:rows[-1] + 1, rx0:rx1] = cv2.dilate(
            (mir_a > 0.02).astype(np.uint8), np.ones((2 * self.contact + 5, 2 * self.ripple + 5), np.uint8)) > 0
        region &= alpha < 0.5
        if region.sum() < 16:
            return None
        # smooth surface estimate from around the candidate (work size for speed)
        k = min(1.0, self.work_side / max(oh, 1))
        ry0, ry1 = rows[0], rows[-1] + 1
        bx0, bx1 = max(0, rx0 - pad), min(w, rx1 + pad)
        by1 = min(h, ry1 + pad)
        sub_b, sub_hole = background[ry0:by1, bx0:bx1], region[ry0:by1, bx0:bx1]
        sh_, sw_ = sub_b.shape[:2]
        tw, th = max(8, int(sw_ * k)), max(8, int(sh_ * k))
        small = cv2.resize(sub_b, (tw, th), interpolation=cv2.INTER_AREA)
        hole_s = cv2.dilate(cv2.resize(sub_hole.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST),
                            np.ones((3, 3), np.uint8)).astype(bool)
        if hole_s.all():
            return None
        surf = cv2.resize(_fill(small, hole_s), (sw_, sh_), interpolation=cv2.INTER_LINEAR)
        bh = surf[:, rx0 - bx0:rx1 - bx0][: len(rows)]
        b_rows = background[rows, rx0:rx1]
        d = (b_rows - bh) * (alpha[rows, rx0:rx1] < 0.5)[..., None]
        # the matte's lowest row may miss the contact by a few rows: the mirror axis is searched
        # (without ripple, for speed), then the fit is made with the ripple at the best axis
        best_t, best_ex = 0, -1.0
        for t in range(-self.contact, self.contact + 1):
            ex = self._fit_mirror(d, bh, *mirror(t), oh, ripple=0)["explained"]
            if ex > best_ex:
                best_t, best_ex = t, ex
        mir_a, mir_f, dist = mirror(best_t)
        fit = self._fit_mirror(d, bh, mir_a, mir_f, dist, oh)
        fit["t"] = best_t
        self.trace.update(reflection_explained=round(fit["explained"], 3), reflection_s=round(fit["s"], 3),
                          reflection_dim=round(fit["kappa"], 3), reflection_L=round(float(fit["L"]) / oh, 2), reflection_t=fit["t"])
        # a strength at its bound (0.98) is a fit that degenerated (the object's own colours darkening
        # the ground: fx24's shadow sample 12), not a reflection
        if (fit["explained"] < self.min_explained or not 0.05 <= fit["s"] < 0.9
                or fit["kappa"] < self.min_dim):
            return None
        # null placements: the object translated (not mirrored), the mirror displaced sideways
        # (with the same freedom of the vertical offset as the mirror)
        def translated(t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            tsrc = y0 + (rows - y1) - t
            valid = (tsrc >= y0) & (tsrc < y1)
            tsrc = np.clip(tsrc, 0, h - 1)
            return alpha[tsrc, rx0:rx1] * valid[:, None], foreground[tsrc, rx0:rx1], dist

        t_best = max(range(-self.contact, self.contact + 1),
                     key=lambda t: self._fit_mirror(d, bh, *translated(t), oh, ripple=0)["explained"])
        nulls = [self._fit_mirror(d, bh, *translated(t_best), oh)["explained"]]
        for side in (-1, 1):
            nulls.append(self._fit_mirror(d, bh, np.roll(mir_a, side * (ow // 2), axis=1),
                                          np.roll(mir_f, side * (ow // 2), axis=1), dist, oh)["explained"])
        null = max(nulls)
        self.trace.update(reflection_null=round(null, 3))
        if fit["explained"] - null < self.min_margin:
            return None
        f = np.clip(1.0 - dist / fit["L"], 0.0, None) ** fit["p"]
        ra, rf = _shift_rows(mir_a, mir_f, fit["shifts"])
        keep = alpha[rows, rx0:rx1] < 1e-3  # only where the object does not cover
        e_a = np.where(keep, np.clip(fit["s"] * f[:, None] * ra, 0.0, 0.98), 0.0)
        e_f = np.clip(fit["kappa"] * rf, 0.0, 1.0)
        b_raw = (b_rows - e_a[..., None] * e_f) / (1.0 - e_a[..., None])
        # the solved surface must be a picture: where the model is wrong, 1/(1 − a) amplifies the
        # misfit out of [0, 1] (a mirrored texture matching itself, plain30s7 0023)
        strong = e_a > 0.1
        out_of_range = float((np.abs(b_raw - np.clip(b_raw, 0.0, 1.0)).max(axis=2) > 0.05)[strong].mean()) \
            if strong.any() else 0.0
        self.trace.update(reflection_out_of_range=round(out_of_range, 3))
        if out_of_range > self.max_out_of_range:
            return None
        b_new = np.clip(b_raw, 0.0, 1.0)
        # colour re-solved against the clipped background: the stack recomposes B exactly
        e_f = np.clip(np.divide(b_rows - (1.0 - e_a[..., None]) * b_new, e_a[..., None], out=np.zeros_like(b_rows),
                                where=e_a[..., None] > 1e-3), 0.0, 1.0)
        out_a = np.zeros((h, w), np.float32)
        out_f = np.zeros((h, w, 3), np.float32)
        clean = background.copy()
        out_a[rows, rx0:rx1] = e_a
        out_f[rows, rx0:rx1] = e_f
        clean[rows, rx0:rx1] = np.where((e_a > 0)[..., None], b_new, b_rows)
        return EffectEstimate("reflection", out_a, out_f, clean, float(fit["explained"]))
