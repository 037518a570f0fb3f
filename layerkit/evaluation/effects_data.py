"""Synthetic composites with visual effects and exact ground truth (``make-dataset --effects``).

Each sample is one RGBA object over a background photo with a **cast shadow** or a
**reflection**, written in the composite-folder format of :mod:`layerkit.evaluation.composites`
(so ``layerkit eval DATA`` scores it as it is):

* ``composite.png``: the GT stack composited from the 8-bit files below (the only error is the
  final rounding to 8 bits);
* ``gt_fg.png`` / ``gt_alpha.png``: the foreground layer **with its effect** (the LASAGNA
  layer: object over its black semi-transparent shadow, or over its reflection);
* ``gt_bg.png``: the clean background (no shadow, no reflection);
* ``gt_object.png``: the object alone (RGBA); ``gt_effect.png``: the effect's alpha (L);
* ``box.json``: ``box_xyxy``/``point_xy`` of the **object** (the prompt a user gives), ``effect``
  (``"shadow"`` or ``"reflection"``) and its parameters.

Shadow model: the object's silhouette projected onto the ground plane from its lowest row
(``x' = x + sx·(y_b − y)``, ``y' = y_b + sy·(y_b − y)``: an affine map, a distant light), blurred
with a radius that grows with the distance from the contact (penumbra), darkening the ground by a
random factor: the shadow is black with alpha ``strength · softened silhouette`` (multiplicative
darkening ``C = (1 − a)·B``). Reflection model: the object flipped about its lowest row,
attenuated by a random factor that fades with the distance, dimmed, and rippled (a horizontal
sine displacement growing with the distance).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from layerkit.errors import DataError
from layerkit.evaluation.dataset import (
    BG_SUFFIXES,
    FG_SUFFIXES,
    _box,
    _files,
    _load_background,
    _load_object,
    _point,
    label_from_name,
)
from layerkit.io.atomic import atomic_path
from layerkit.io.image import to_uint8
from layerkit.ops.compositing import resize_rgba

#: effect kinds the maker draws
EFFECTS: tuple[str, ...] = ("shadow", "reflection")
MARGIN = 2


def parse_effects(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"shadow,reflection"`` → ``("shadow", "reflection")``.

    Raises:
        DataError: an unknown or empty effect list.
    """
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in EFFECTS]
    if not items or bad:
        raise DataError(f"--effects {text!r} is not valid; give a comma-separated list of {', '.join(EFFECTS)}")
    return tuple(dict.fromkeys(items))


def over_premul(top_rgb: np.ndarray, top_a: np.ndarray, bot_rgb: np.ndarray, bot_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straight-alpha ``top over bottom`` of two partly transparent layers → ``(rgb, alpha)``."""
    a = top_a + bot_a * (1.0 - top_a)
    prem = top_rgb * top_a[..., None] + bot_rgb * (bot_a * (1.0 - top_a))[..., None]
    rgb = np.divide(prem, a[..., None], out=np.zeros_like(prem), where=a[..., None] > 1e-8)
    return np.clip(rgb, 0.0, 1.0), a


def cast_shadow(alpha: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """A projected, distance-softened silhouette shadow of ``alpha`` (``H×W`` → ``H×W`` shadow alpha)."""
    import cv2

    h, w = alpha.shape
    box = _box(alpha > 0.5)
    if box is None:
        return np.zeros_like(alpha), {}
    x0, y0, x1, y1 = box
    yb, oh = float(y1 - 1), float(max(1, y1 - y0))
    sx = float(rng.choice([-1, 1]) * rng.uniform(0.4, 1.3))
    sy = float(rng.uniform(-0.5, -0.12) if rng.random() < 0.7 else rng.uniform(0.1, 0.3))
    m = np.array([[1.0, -sx, sx * yb], [0.0, -sy, yb * (1.0 + sy)]])
    sil = cv2.warpAffine((alpha > 0.5).astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
    ys = np.arange(h, dtype=np.float32)[:, None].repeat(w, axis=1)
    height = np.clip((yb - ys) / oh, 0.0, 1.0)
    dist = cv2.warpAffine(height, m, (w, h), flags=cv2.INTER_LINEAR)
    s0 = float(rng.uniform(0.6, 1.5))
    s1 = float(rng.uniform(0.02, 0.06) * oh)
    sigmas = np.linspace(s0, s0 + s1, 4)
    blurred = [cv2.GaussianBlur(sil, (0, 0), float(s)) for s in sigmas]
    wide = cv2.GaussianBlur(sil, (0, 0), float(sigmas[-1]))
    d = np.clip(cv2.GaussianBlur(sil * dist, (0, 0), float(sigmas[-1])) / np.maximum(wide, 1e-4), 0.0, 1.0)
    pos = d * (len(sigmas) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(sigmas) - 2)
    t = pos - lo
    stack = np.stack(blurred)
    soft = (1 - t) * np.take_along_axis(stack, lo[None], 0)[0] + t * np.take_along_axis(stack, lo[None] + 1, 0)[0]
    strength = float(rng.uniform(0.3, 0.7))
    fade = float(rng.uniform(0.0, 0.4))
    shadow = np.clip(strength * soft * (1.0 - fade * d), 0.0, 1.0)
    return shadow.astype(np.float64), {"sx": round(sx, 3), "sy": round(sy, 3), "strength": round(strength, 3),
                                       "fade": round(fade, 3), "sigma": [round(s0, 2), round(s0 + s1, 2)]}


def reflect(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A flipped, attenuated, rippled reflection of the object below its lowest row → ``(rgb, alpha, params)``."""
    import cv2

    h, w = alpha.shape
    box = _box(alpha > 0.5)
    if box is None:
        return np.zeros_like(rgb), np.zeros_like(alpha), {}
    x0, y0, x1, y1 = box
    yb, oh = float(y1 - 1), float(max(1, y1 - y0))
    length = float(rng.uniform(0.5, 1.0) * oh)
    amp, lam, phase = float(rng.uniform(0.5, 3.0)), float(rng.uniform(6.0, 18.0)), float(rng.uniform(0, 2 * np.pi))
    strength, dim = float(rng.uniform(0.3, 0.65)), float(rng.uniform(0.7, 1.0))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.clip(ys - yb, 0.0, None)
    map_y = (2.0 * yb + 1.0 - ys).astype(np.float32)
    map_x = (xs + amp * np.minimum(dist / max(length, 1.0), 1.0) * np.sin(2 * np.pi * dist / lam + phase)).astype(np.float32)
    src = np.dstack([rgb * alpha[..., None], alpha]).astype(np.float32)
    out = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    below = ys > yb
    fade = np.clip(1.0 - dist / length, 0.0, 1.0) ** 1.5
    a_src = out[..., 3]
    r_rgb = np.divide(out[..., :3], a_src[..., None], out=np.zeros_like(out[..., :3]), where=a_src[..., None] > 1e-6)
    r_alpha = np.where(below, strength * fade * a_src, 0.0)
    return np.clip(r_rgb * dim, 0.0, 1.0).astype(np.float64), r_alpha.astype(np.float64), {
        "strength": round(strength, 3), "dim": round(dim, 3), "length": round(length, 1), "ripple_amp": round(amp, 2),
        "ripple_wavelength": round(lam, 2)}


def make_effect_sample(fg_files: list[Path], bg_files: list[Path], index: int, seed: int, effects: Sequence[str],
                       cover: tuple[float, float] = (0.04, 0.15),
                       max_side: int = 640) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Draw one sample.

    Returns:
        ``(arrays, meta)``: 8-bit ``composite`` (``H×W×3``), ``fg`` (``H×W×4``, object with its
        effect), ``bg`` (``H×W×3`` clean), ``object`` (``H×W×4``), ``effect`` (``H×W`` alpha), and
        the ``box.json`` content.
    """
    rng = np.random.default_rng([seed, index, 13])
    kind = str(effects[int(rng.integers(len(effects)))])
    bg_path, fg_path = bg_files[int(rng.integers(len(bg_files)))], fg_files[int(rng.integers(len(fg_files)))]
    bg = _load_background(bg_path, max_side)
    h, w = bg.shape[:2]
    obj = _load_object(fg_path)
    fh, fw = obj.shape[:2]
    tight = _box(obj[..., 3] > 0.1) or [0, 0, fw, fh]
    tw, th = tight[2] - tight[0], tight[3] - tight[1]
    room = 0.55 if kind == "reflection" else 0.8  # share of the canvas height the object may use
    s = min(np.sqrt(rng.uniform(*cover) * w * h / (tw * th)), (w - 2 * MARGIN) / fw, room * (h - 2 * MARGIN) / fh)
    nw, nh = max(1, int(round(fw * s))), max(1, int(round(fh * s)))
    small = resize_rgba(obj, (nh, nw), "lanczos").astype(np.float64)
    ox = int(rng.integers(MARGIN, w - nw - MARGIN + 1))
    if kind == "reflection":
        lo, hi = MARGIN, max(MARGIN, int(0.62 * h) - nh)
    else:
        lo, hi = max(MARGIN, int(0.2 * h)), h - nh - MARGIN
    oy = int(rng.integers(lo, max(lo, hi) + 1))
    o_rgb, o_a = np.zeros((h, w, 3)), np.zeros((h, w))
    o_rgb[oy:oy + nh, ox:ox + nw], o_a[oy:oy + nh, ox:ox + nw] = small[..., :3], small[..., 3]
    o_a8 = to_uint8(o_a).astype(np.float64) / 255.0
    o_rgb = to_uint8(o_rgb).astype(np.float64) / 255.0
    if kind == "shadow":
        e_a, params = cast_shadow(o_a8, rng)
        e_rgb = np.zeros((h, w, 3))
    else:
        e_rgb, e_a, params = reflect(o_rgb, o_a8, rng)
    e_a8 = to_uint8(e_a).astype(np.float64) / 255.0
    f_rgb, f_a = over_premul(o_rgb, o_a8, e_rgb, e_a8)
    a8, f8, b8 = to_uint8(f_a), to_uint8(f_rgb), to_uint8(bg)
    f8[a8 == 0] = 0
    af = a8.astype(np.float64)[..., None] / 255.0
    comp = to_uint8(af * f8 / 255.0 + (1.0 - af) * b8 / 255.0)
    ob8 = to_uint8(o_rgb)
    ob8[to_uint8(o_a8) == 0] = 0
    vis = o_a8 > 0
    box = _box(o_a8 > 0.1) or _box(vis)
    meta = {"label": label_from_name(fg_path), "effect": kind, "effect_params": params, "box_xyxy": box,
            "point_xy": _point(o_a8), "effect_box_xyxy": _box(e_a8 > 0.02), "fg_file": fg_path.name, "bg_file": bg_path.name,
            "scale": round(float(s), 4), "offset_xy": [ox, oy], "canvas_wh": [w, h], "seed": seed, "index": index}
    arrays = {"composite": comp, "fg": np.dstack([f8, a8]), "bg": b8, "object": np.dstack([ob8, to_uint8(o_a8)]),
              "effect": to_uint8(e_a8)}
    return arrays, meta


def make_effects_dataset(fg_dir: str | Path, bg_dir: str | Path, out: str | Path, effects: Sequence[str] = EFFECTS,
                         n: int = 40, seed: int = 0, cover: tuple[float, float] = (0.04, 0.15), max_side: int = 640,
                         overwrite: bool = False, progress: Callable[[int, dict[str, Any]], None] | None = None) -> Path:
    """Write ``n`` effect samples to ``out`` (atomically: the complete folder or nothing).

    Args:
        fg_dir: folder of straight-alpha RGBA PNG objects (file name = ``label_NN.png``).
        bg_dir: folder of background photos.
        out: output folder (composite-folder format, see the module docstring).
        effects: kinds to draw from (each sample gets one, at random).
        n: number of samples.
        seed: random seed (a sample depends only on it, its index, the flags and the file lists).
        cover: ``(min, max)`` share of the canvas covered by the object's tight box.
        max_side: backgrounds are downscaled to this long side.
        overwrite: replace an existing ``out``.
        progress: ``callback(index, meta)`` after each sample.

    Raises:
        DataError: bad folders, effects or ranges.
    """
    effects = parse_effects(effects)
    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    if not (0.0 < cover[0] <= cover[1] <= 0.5):
        raise DataError(f"--cover must be MIN,MAX with 0 < MIN <= MAX <= 0.5 for effect samples, got {cover[0]:g},{cover[1]:g}")
    fgs, bgs = _files(fg_dir, FG_SUFFIXES, "foreground"), _files(bg_dir, BG_SUFFIXES, "background")
    index = []
    with atomic_path(out, overwrite=overwrite, directory=True) as tmp:
        tmp.chmod(0o755)
        for i in range(n):
            arr, meta = make_effect_sample(fgs, bgs, i, seed, effects, cover, max_side)
            d = tmp / f"{i:04d}"
            d.mkdir()
            Image.fromarray(arr["composite"], "RGB").save(d / "composite.png")
            Image.fromarray(arr["fg"], "RGBA").save(d / "gt_fg.png")
            Image.fromarray(arr["fg"][..., 3], "L").save(d / "gt_alpha.png")
            Image.fromarray(arr["bg"], "RGB").save(d / "gt_bg.png")
            Image.fromarray(arr["object"], "RGBA").save(d / "gt_object.png")
            Image.fromarray(arr["effect"], "L").save(d / "gt_effect.png")
            (d / "box.json").write_text(json.dumps(meta, indent=1))
            index.append({"dir": d.name, "label": meta["label"], "effect": meta["effect"], "bg_file": meta["bg_file"]})
            if progress is not None:
                progress(i, meta)
        params = {"fg_dir": str(fg_dir), "bg_dir": str(bg_dir), "n": n, "seed": seed, "effects": list(effects),
                  "cover": list(cover), "max_side": max_side}
        doc = {"format": "layerkit.effects/1", "params": params, "samples": index}
        (tmp / "index.json").write_text(json.dumps(doc, indent=1))
    return Path(out)
