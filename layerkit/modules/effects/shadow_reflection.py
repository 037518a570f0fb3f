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
changes the object and not its shadow. Detection, fit and removal work on log-luminance
gradients, which the ground's texture and slow illumination changes do not bias
(:mod:`layerkit.modules.effects.shadow`).

**Reflection** = the object's colours mirrored about its contact row, per row shifted (ripple),
attenuated and fading with the distance: ``B = (1 − a)·B̂ + a·κ·R'``, ``a = s·(1 − t/L)^p·ρ'``.
``s, κ`` are fitted by least squares for a grid of fades ``(L, p)`` against the smooth surface
around the candidate, the mirror axis searched ±``contact`` rows and the shift per row in
±``ripple`` px; it is kept when it explains ``≥ min_explained`` of the variation below the
object and ``≥ min_margin`` more than null placements (the object translated, not mirrored;
the mirror displaced sideways), so surface structure under the object is not taken for one
(:mod:`layerkit.modules.effects.reflection`). ``B' = (B − a·κR')/(1 − a)`` keeps the texture.
"""

from __future__ import annotations

import numpy as np

from layerkit.modules.base import Effects
from layerkit.modules.effects.common import EffectEstimate
from layerkit.modules.effects.reflection import ReflectionMixin
from layerkit.modules.effects.shadow import ShadowMixin
from layerkit.types import Prompt, alpha_bbox


class ShadowReflectionEffects(ShadowMixin, ReflectionMixin, Effects):
    """Find an object's cast shadow / reflection and move it into the object's layer.

    Args:
        effects: kinds looked for, a subset of ``("shadow", "reflection")``.
        work_side: detection runs with the object scaled to about this height in pixels.
        reach: search distance around the object, in object heights.
        min_darkening: a shadow darkens the ground by at least this share (``1 − r``).
        min_contrast: smallest matched-filter score of the shadow's outline (its log-luminance
            drop over the spread texture gives it, see :mod:`layerkit.modules.effects.shadow`).
        max_chroma_shift: largest chromaticity change across the outline, as a share of the
            log-luminance drop (a shadow darkens; a dark neighbour has its own colour).
        chroma_weight: how much a chromaticity change across the outline lowers the score.
        sectors: the shadow's outline is cut into this many sectors; the score counts the median
            sector's drop (a shadow darkens along all of its outline).
        candidates: distinct light directions (best score first) verified before giving up.
        chroma_bin: chromaticity bin width (log R/G, log B/G) of the lit-ground match.
        min_dark_share: share of the shadow's pixels that must be darker than the lit ground of
            their colour next to the shadow.
        min_cover: share of the shadow's pixels whose colour must be found in the lit ground
            around it (a shadow keeps the ground's colour).
        min_edge: the strength the outline's edge alone shows (biased low by texture) must reach
            this share of the matched strength (a dark patch without the shadow's edge is not one).
        core_level: after the penumbra is fitted, the strength is matched again on the core
            where the soft shadow exceeds this (0.5: not again).
        max_drop: the shadow's contact row is searched down to this many object heights below the
            matte's lowest row (a matte that misses the legs or the trunk; 0: the lowest row only).
        drop_penalty: score lowered per object height of that drop (a prior for the matte's own row).
        polish: once a shadow passes the tests, refine its direction by the robust fit of the whole
            model (strength, fade, penumbra) to the log-luminance gradients.
        polish_joint: in that fit, each direction is scored with its best strength (0.7–1.3× the
            matched one) instead of the matched strength (off by default: on, the shadow sets' effect-region
            gain goes TUNE +5.07 → +5.16 dB, UNSEEN +4.05 → +3.54 dB; docs/lasagna.md).
        region_fallback: when the fitted penumbra leaves no inner core to match the strength again
            on (a thin, blurred shadow), strength and fade are those that make each material of the
            whole region most uniform once the shadow is divided out, not the first match's.
        chroma_noise: the chromaticity shift tested against ``max_chroma_shift`` is first lowered by
            this many spreads of the one the ground's colour texture gives along the outline by chance
            (``σ_ch / sqrt(Σ|∇P|²)``, ``σ_ch`` the ground's RMS chromaticity gradient; 0: not lowered).
        fit_tau: scale of the robust (Cauchy) loss of the shadow fit, in log-luminance per pixel.
        min_explained: share of the variation below the object a reflection must explain.
        min_margin: how much more of it the mirrored object must explain than the best null
            placement (the object translated, or mirrored but displaced sideways).
        min_dim: smallest colour-to-alpha ratio of a reflection (a mirrored *darkening* is a shadow).
        ripple: largest per-row horizontal shift (pixels) of a reflection.
        contact: the reflection's mirror axis is searched this many rows around the matte's lowest row.
        kappa_prior: weight of the prior that a reflection's dimming is about 0.85 (share of the fit's
            normal matrix; 0: none).
        max_out_of_range: largest share of the reflection's pixels (alpha > 0.1) whose solved
            surface leaves ``[0, 1]`` by more than 0.05 (a misfit the division amplifies).
    """

    def __init__(self, effects: tuple[str, ...] | list[str] = ("shadow", "reflection"), work_side: int = 120,
                 reach: float = 1.5, min_darkening: float = 0.12, min_contrast: float = 4.0,
                 max_chroma_shift: float = 0.2, chroma_weight: float = 1.0, fit_tau: float = 0.03, sectors: int = 6,
                 candidates: int = 3, chroma_bin: float = 0.06, min_dark_share: float = 0.8, min_cover: float = 0.3,
                 min_edge: float = 0.6, core_level: float = 0.8, max_drop: float = 0.0, drop_penalty: float = 0.0,
                 polish: bool = True, polish_joint: bool = False, region_fallback: bool = True, chroma_noise: float = 0.0,
                 min_explained: float = 0.2, min_margin: float = 0.1,
                 min_dim: float = 0.5, ripple: int = 3, contact: int = 3,
                 kappa_prior: float = 0.05, max_out_of_range: float = 0.05) -> None:
        bad = [e for e in effects if e not in ("shadow", "reflection")]
        if bad:
            raise ValueError(f"effects: unknown kind(s) {bad}; use shadow and/or reflection")
        if work_side < 16:
            raise ValueError(f"work_side must be at least 16, got {work_side}")
        if ripple < 0 or contact < 0:
            raise ValueError(f"ripple and contact must be >= 0 pixels/rows, got ripple={ripple}, contact={contact}")
        if not 0.0 <= max_out_of_range <= 1.0:
            raise ValueError(f"max_out_of_range is a share in [0, 1], got {max_out_of_range}")
        self.effects = tuple(effects)
        self.work_side = int(work_side)
        self.reach = float(reach)
        self.min_darkening = float(min_darkening)
        self.min_contrast = float(min_contrast)
        self.max_chroma_shift = float(max_chroma_shift)
        self.chroma_weight = float(chroma_weight)
        self.fit_tau = float(fit_tau)
        self.sectors = int(sectors)
        self.candidates = int(candidates)
        self.chroma_bin = float(chroma_bin)
        self.min_dark_share = float(min_dark_share)
        self.min_cover = float(min_cover)
        self.min_edge = float(min_edge)
        self.core_level = float(core_level)
        if max_drop < 0:
            raise ValueError(f"max_drop is in object heights, >= 0, got {max_drop}")
        self.max_drop = float(max_drop)
        self.drop_penalty = float(drop_penalty)
        self.polish = bool(polish)
        self.polish_joint = bool(polish_joint)
        self.region_fallback = bool(region_fallback)
        if not chroma_noise >= 0.0:
            raise ValueError(f"chroma_noise is a number of spreads, >= 0, got {chroma_noise}")
        self.chroma_noise = float(chroma_noise)
        self.min_explained = float(min_explained)
        self.min_margin = float(min_margin)
        self.min_dim = float(min_dim)
        self.ripple = int(ripple)
        self.contact = int(contact)
        self.kappa_prior = float(kappa_prior)
        self.max_out_of_range = float(max_out_of_range)
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
            if est.refilled is not None:  # the new background there: the colour that keeps the stack
                stack = a[..., None] * f + (1.0 - a[..., None]) * b
                prem = np.where(est.refilled[..., None], stack - (1.0 - a_new[..., None]) * est.background, prem)
            f = np.divide(prem, a_new[..., None], out=np.zeros_like(prem), where=a_new[..., None] > 1e-6)
            a, b = a_new, est.background
        return a.astype(np.float32), np.clip(f, 0.0, 1.0).astype(np.float32), np.clip(b, 0.0, 1.0).astype(np.float32)
