"""The reflection figure of docs/lasagna.md: a rippled reflection on water, made in code.

Usage (from the repository root)::

    python benchmarks/reflection_figure.py -o docs/img/effects_reflection_water.png

Row per scene (the scenes of ``tests/test_effects.py``: ``_water`` ground, ``_striped_object``,
the dataset maker's ``reflect``): composite · layer alpha after the effects stage (object
white, reflection grey) · the background the stage was given (reflection still in it) · the
cleaned background · the true ground. The last row has the object's copy *translated* (not
mirrored) below it: the null test rejects it and the layer stays the object alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_effects import _background_guess, _striped_object, _water  # noqa: E402

from layerkit.evaluation.effects_data import over_premul, reflect  # noqa: E402
from layerkit.modules.effects.shadow_reflection import ShadowReflectionEffects  # noqa: E402
from layerkit.ops.compositing import psnr  # noqa: E402


def scene(seed: int, translated: bool = False) -> tuple[np.ndarray, ...]:
    """``(image, ground, object alpha, object colour, true reflection alpha)`` of one 200×180 scene."""
    h, w = 200, 180
    ground = _water(h, w, seed)
    rgb, alpha = _striped_object(h, w)
    if translated:
        ca, cf = np.roll(alpha, 67, axis=0) * 0.45, np.roll(rgb, 67, axis=0)
        ca[:67] = 0
        ground = ((1 - ca[..., None]) * ground + ca[..., None] * cf).astype(np.float32)
        image = alpha[..., None] * rgb + (1 - alpha[..., None]) * ground
        r_a = np.zeros_like(alpha)
    else:
        r_rgb, r_a, _ = reflect(rgb.astype(np.float64), alpha.astype(np.float64), np.random.default_rng(seed))
        f, a = over_premul(rgb.astype(np.float64), alpha.astype(np.float64), r_rgb, r_a)
        image = a[..., None] * f + (1 - a[..., None]) * ground
    return image.astype(np.float32), ground, alpha, rgb, r_a


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="docs/img/effects_reflection_water.png")
    args = p.parse_args(argv)
    rows = []
    for seed, translated in ((1, False), (4, False), (3, True)):
        image, ground, alpha, rgb, r_a = scene(seed, translated)
        stage = ShadowReflectionEffects(effects=("shadow", "reflection"))
        b0 = _background_guess(image, alpha)
        a, _, b = stage(image, alpha, rgb, b0)
        region = (r_a > 0.05) & (alpha < 0.5)  # the true reflection, as in the tests
        gain = f"{psnr(b0, ground, region):.1f} -> {psnr(b, ground, region):.1f} dB" if region.any() else "-"
        print(f"seed {seed} translated={translated}: found {[e.kind for e in stage.last]}, reflection region B {gain}")
        tiles = [image, np.repeat(a[..., None], 3, 2), b0, b, ground]
        rows.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=1.0) for t in tiles]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(np.vstack(rows), 0, 1) * 255 + 0.5).astype(np.uint8)).save(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
