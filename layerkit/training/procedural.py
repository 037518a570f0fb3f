"""Licence-clean procedural RGBA objects and backgrounds (numpy + OpenCV, seeded).

Anything the project *fits* (the ``cues`` orderer's logistic weights, a model's parameters) must
not be fitted on the GPL objects of the dev set. These generators draw objects that have the traits
the weight-free stages meet on real cut-outs — outlines with bulges and notches, parts of different
colours (a head and a body), thin limbs or stems, soft fur-like rims, shading and texture — and
backgrounds with smooth gradients, texture and clutter, so fitted weights come from data anyone
may use. ``benchmarks/procedural_data.py`` writes folders of them for ``layerkit make-dataset``.

Objects are straight RGBA ``uint8`` (RGB = 0 where α = 0), cropped to their α > 0 box plus 2 px
(the dev foreground convention); backgrounds are RGB ``uint8``.
"""

from __future__ import annotations

import cv2
import numpy as np

#: outline families drawn by :func:`object_rgba`
SHAPES = ("blob", "polygon", "capsule", "plant", "two_part")


def _noise(h: int, w: int, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Smooth multi-octave value noise in ``[-1, 1]``, ``(h, w)`` float32."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        small = rng.standard_normal((cells, cells)).astype(np.float32)
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    return np.clip(out / (np.abs(out).max() + 1e-6), -1.0, 1.0)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in ``[0, 1]`` (HSV with moderate saturation and value)."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 256), rng.integers(60, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _radial(n: int, rng: np.random.Generator, bumps: float) -> np.ndarray:
    """A closed outline ``r(θ)`` of ``n`` points: 1 plus a few random harmonics."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 8):
        r += bumps * rng.uniform(0, 1) / k * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    return np.clip(r, 0.25, None)


def _poly(cx: float, cy: float, rx: float, ry: float, r: np.ndarray, rot: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, len(r), endpoint=False) + rot
    return np.stack([cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)], 1)


def _fill(mask: np.ndarray, pts: np.ndarray, ss: int) -> None:
    cv2.fillPoly(mask, [np.round(pts * ss).astype(np.int32)], 255, lineType=cv2.LINE_8)


def _shape(kind: str, size: int, rng: np.random.Generator, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary mask at ``ss``× supersampling and a part label map (0 or 1) of the same size."""
    h = w = size * ss
    mask = np.zeros((h, w), np.uint8)
    part = np.zeros((h, w), np.uint8)
    c, rad = size / 2, size * 0.38
    aspect = rng.uniform(0.45, 1.0)
    if kind == "blob":
        _fill(mask, _poly(c, c, rad, rad * aspect, _radial(180, rng, 0.9), rng.uniform(0, np.pi)), ss)
    elif kind == "polygon":
        n = int(rng.integers(3, 9))
        star = rng.uniform(0.4, 1.0) if rng.uniform() < 0.4 else 1.0
        r = np.array([1.0 if i % 2 == 0 else star for i in range(2 * n)])
        _fill(mask, _poly(c, c, rad, rad * aspect, r, rng.uniform(0, np.pi)), ss)
    elif kind == "capsule":
        a = rng.uniform(0, np.pi)
        d = np.array([np.cos(a), np.sin(a)]) * rad * 0.9
        p0, p1 = np.array([c, c]) - d, np.array([c, c]) + d
        thick = int(size * rng.uniform(0.12, 0.35) * ss)
        cv2.line(mask, tuple(np.round(p0 * ss).astype(int)), tuple(np.round(p1 * ss).astype(int)), 255, thick)
    elif kind == "plant":  # a crown on thin stems: the "thin and see-through" objects
        base = np.array([c + rng.uniform(-0.1, 0.1) * size, size * 0.95])
        for _ in range(int(rng.integers(2, 6))):
            tip = np.array([c + rng.uniform(-0.35, 0.35) * size, size * rng.uniform(0.15, 0.5)])
            cv2.line(mask, tuple(np.round(base * ss).astype(int)), tuple(np.round(tip * ss).astype(int)), 255,
                     max(1, int(size * rng.uniform(0.01, 0.04) * ss)))
            _fill(part, _poly(tip[0], tip[1], size * rng.uniform(0.08, 0.18), size * rng.uniform(0.06, 0.14),
                              _radial(90, rng, 0.8), rng.uniform(0, np.pi)), ss)
        mask |= part
    else:  # two_part: a body and a head of another colour, joined
        _fill(mask, _poly(c, c * 1.15, rad, rad * aspect * 0.8, _radial(180, rng, 0.5), 0.0), ss)
        a = rng.uniform(-np.pi * 0.9, -np.pi * 0.1)
        hx, hy = c + np.cos(a) * rad * 0.9, c * 1.15 + np.sin(a) * rad * aspect * 0.8
        _fill(part, _poly(hx, hy, rad * 0.45, rad * 0.45, _radial(120, rng, 0.4), 0.0), ss)
        mask |= part
    return mask, (part > 0).astype(np.uint8)


def object_rgba(rng: np.random.Generator, size: int | None = None, kind: str | None = None) -> np.ndarray:
    """One procedural object: straight RGBA ``uint8``, cropped to its α > 0 box + 2 px."""
    size = int(size or rng.integers(120, 420))
    kind = kind or str(rng.choice(SHAPES))
    ss = 4
    mask, part = _shape(kind, size, rng, ss)
    alpha = cv2.resize(mask.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_AREA)
    part = cv2.resize(part.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0.5
    if rng.uniform() < 0.3:  # a soft, fur- or foliage-like rim
        k = int(rng.integers(1, 4)) * 2 + 1
        rim = cv2.GaussianBlur(alpha, (k, k), 0)
        alpha = np.where(alpha > 0.99, alpha, rim * (0.6 + 0.4 * (_noise(size, size, rng) > -0.2)))
    base = np.where(part[..., None], _colour(rng), _colour(rng))
    tex = _noise(size, size, rng, octaves=int(rng.integers(3, 8)))[..., None]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    shade = 1.0 + rng.uniform(0.1, 0.4) * (0.5 - (xx * np.cos(1.0) + yy * np.sin(1.0)))[..., None]
    rgb = base * shade * (1.0 + rng.uniform(0.1, 0.5) * tex)
    if rng.uniform() < 0.25:  # stripes or spots of a third colour
        f = rng.uniform(4, 14)
        sel = (np.sin((xx * np.cos(f) + yy * np.sin(f)) * f * np.pi) > 0.6)[..., None]
        rgb = np.where(sel, _colour(rng) * shade, rgb)
    rgb = np.clip(rgb, 0.0, 1.0)
    a8 = np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8)
    out = np.dstack([np.round(rgb * 255).astype(np.uint8) * (a8[..., None] > 0), a8])
    ys, xs = np.nonzero(a8)
    y0, y1 = max(0, ys.min() - 2), min(size, ys.max() + 3)
    x0, x1 = max(0, xs.min() - 2), min(size, xs.max() + 3)
    return np.ascontiguousarray(out[y0:y1, x0:x1])


def background_rgb(rng: np.random.Generator, h: int = 480, w: int = 640) -> np.ndarray:
    """One procedural background: a two-colour gradient, texture, and a few blurred clutter shapes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    t = ((xx / w) * np.cos(a) + (yy / h) * np.sin(a))
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    img = _colour(rng) * (1 - t[..., None]) + _colour(rng) * t[..., None]
    img = img * (1.0 + rng.uniform(0.05, 0.4) * _noise(h, w, rng, octaves=int(rng.integers(4, 9)))[..., None])
    for _ in range(int(rng.integers(0, 8))):
        m = np.zeros((h, w), np.uint8)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.03, 0.2) * min(h, w)
        _fill(m, _poly(cx, cy, r, r * rng.uniform(0.3, 1), _radial(60, rng, 0.6), rng.uniform(0, np.pi)), 1)
        k = int(rng.integers(0, 4)) * 4 + 1
        m = cv2.GaussianBlur(m.astype(np.float32) / 255.0, (k, k), 0)[..., None]
        img = img * (1 - m) + _colour(rng) * m
    if rng.uniform() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3.0))
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
