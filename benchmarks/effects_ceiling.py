"""Where a found shadow loses: its parameters replaced, one group at a time, by the true ones.

For every shadow sample where the effects stage finds a shadow, the stage's removal
(:meth:`ShadowMixin._remove`: its contact row, its segmentation) is run again with some of its
parameters replaced by the generator's (``box.json`` ``effect_params``): the strength, the
fade, both, the penumbra, the direction, all of them. The figure is the background PSNR inside
the GT effect region, as a gain over ``classical`` (as in ``benchmarks/effects.py``).

Usage (from the repository root, after ``benchmarks/effects.py ... --cache DIR`` on the same set)::

    python benchmarks/effects_ceiling.py --effects-data /tmp/fx/tune_sh --cache /tmp/fx/cache

With ``--gt-matte`` it measures the segmentation's share instead: the stage (shadows) run on
``classical``'s result with its matte and with the *true* object matte (``gt_object.png``, the
same background), every sample's effect-region gain over ``classical`` and the set's mean.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from layerkit import Pipeline
from layerkit.evaluation.composites import read_rgba
from layerkit.ops.compositing import psnr
from layerkit.types import alpha_bbox

GROUPS = (("s",), ("f",), ("s", "f"), ("g0", "g1"), ("s", "f", "g0", "g1"), ("sx", "sy"),
          ("sx", "sy", "s", "f", "g0", "g1"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--effects-data", required=True, help="folder made by layerkit make-dataset --effects shadow")
    p.add_argument("--cache", required=True, help="the --cache folder of benchmarks/effects.py (classical's results)")
    p.add_argument("--set", nargs="*", default=[], help="overrides of classical+effects (effects.KEY=VALUE)")
    p.add_argument("--gt-matte", action="store_true", help="the stage with classical's matte vs the true object matte")
    a = p.parse_args(argv)
    data, cache = Path(a.effects_data), Path(a.cache)
    if not data.is_dir() or not cache.is_dir():
        print(f"error: {data if not data.is_dir() else cache} is not a folder", file=sys.stderr)
        return 2
    eff = Pipeline.from_config("classical+effects", ["effects.effects=[shadow]", *a.set]).effects
    if a.gt_matte:
        return _gt_matte(eff, data, cache)
    rows = []
    for sd, meta, z, _, gtb, region in _shadow_samples(data, cache):
        alpha, bg = z["alpha"], z["background"]
        eff(z["image"], alpha, z["foreground"], bg)
        t = dict(eff.trace)
        if not eff.last or "shadow_sigma0" not in t:
            continue
        roi, k = eff._roi(alpha)
        x0, y0, x1, y1 = roi
        size = (max(8, int(round((x1 - x0) * k))), max(8, int(round((y1 - y0) * k))))
        box = alpha_bbox((cv2.resize(alpha[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA) > 0.5).astype(np.float32))
        oh = float(box[3] - box[1])  # type: ignore[index]
        ep = meta["effect_params"]
        stage = dict(sx=t["shadow_sx"], sy=t["shadow_sy"], s=t["shadow_darkening"], f=t["shadow_fade"],
                     g0=t["shadow_sigma0"] * k, g1=(t["shadow_sigma1"] - t["shadow_sigma0"]) * k)
        true = dict(sx=ep["sx"], sy=ep["sy"], s=ep["strength"], f=ep["fade"], g0=ep["sigma"][0] * k,
                    g1=(ep["sigma"][1] - ep["sigma"][0]) * k)
        base = psnr(bg, gtb, region)

        drop = t.get("shadow_contact_drop", 0.0) * oh
        variants = {"stage": stage, **{"true_" + "+".join(g): {**stage, **{kk: true[kk] for kk in g}} for g in GROUPS}}
        row: dict[str, object] = {"id": sd.name, "stage_params": stage, "true_params": true}
        for name, q in variants.items():
            est = eff._remove(alpha, bg, roi, k, oh, q["sx"], q["sy"], q["s"], q["f"], q["g0"], q["g1"], 0.0, drop)
            row[name] = float(psnr(est.background, gtb, region) - base)
        rows.append(row)
        print(f"{sd.name} stage {row['stage']:+.1f} | " + " | ".join(  # type: ignore[str-format]
            f"true {'+'.join(g)} {row['true_' + '+'.join(g)]:+.1f}" for g in GROUPS), flush=True)
    if rows:
        n = len(list(q for q in data.iterdir() if q.is_dir()))
        print(f"{len(rows)} found of {n}; sum of gains over the finds (dB), divide by {n} for the set's mean:")
        for key in ["stage"] + ["true_" + "+".join(g) for g in GROUPS]:
            print(f"  {key:28s} {sum(r[key] for r in rows):+7.1f}")
    return 0


def _shadow_samples(data: Path, cache: Path) -> Iterator[tuple[Path, dict, Any, np.ndarray, np.ndarray, np.ndarray]]:
    """The shadow samples of ``data`` with a cached ``classical`` result: ``(folder, box.json, the cached
    npz, the true object alpha, the true background, the GT effect region outside the object)``."""
    for sd in sorted(q for q in data.iterdir() if q.is_dir()):
        file = cache / f"{data.name}_{sd.name}.npz"
        meta = json.loads((sd / "box.json").read_text()) if (sd / "box.json").exists() else {}
        if not file.exists() or meta.get("effect") != "shadow":
            continue
        obj, e = read_rgba(sd / "gt_object.png")[..., 3], read_rgba(sd / "gt_effect.png")[..., 0]
        gtb = read_rgba(sd / "gt_bg.png")[..., :3]
        yield sd, meta, np.load(file), obj, gtb, (e > 0.02) & (obj < 0.5)


def _gt_matte(eff: Any, data: Path, cache: Path) -> int:
    """Effect-region gain of the stage with classical's matte and with the true object matte, per sample and mean."""
    gains: dict[str, list[float]] = {"classical matte": [], "true matte": []}
    found = {k: 0 for k in gains}
    for sd, meta, z, obj, gtb, region in _shadow_samples(data, cache):
        base = psnr(z["background"], gtb, region)
        row = []
        for key, matte in (("classical matte", z["alpha"]), ("true matte", obj.astype(np.float32))):
            b = eff(z["image"], matte, z["foreground"], z["background"])[2]
            gains[key].append(float(psnr(b, gtb, region) - base))
            found[key] += bool(eff.last)
            row.append(f"{key} {gains[key][-1]:+.1f}{' (found)' if eff.last else ''}")
        print(f"{sd.name} {meta.get('label', '')}: " + " | ".join(row), flush=True)
    for key, g in gains.items():
        if g:
            print(f"{key}: mean effect-region gain {np.mean(g):+.2f} dB, {found[key]} found of {len(g)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
