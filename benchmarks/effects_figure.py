"""The figure of docs/lasagna.md: a cast shadow on a strongly textured floor, made in code.

Usage (from the repository root)::

    python benchmarks/effects_figure.py -o docs/img/effects_shadow_planks.png

Row per scene: composite · layer alpha after the effects stage (object white, shadow grey) ·
cleaned background · the true floor · the layer moved by 40 px with effects · the same move
with ``classical`` alone (its shadow stays behind as a dark ghost). The scenes are those of
``tests/test_effects.py`` (``_planks`` floor, ``cast_shadow`` of the dataset maker).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_effects import planks_shadow_scene  # noqa: E402

from layerkit import Pipeline  # noqa: E402
from layerkit.editing import move  # noqa: E402
from layerkit.ops.compositing import psnr  # noqa: E402
from layerkit.types import Prompt  # noqa: E402


def scene(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """``(image, floor, shadow alpha, box)`` of one code-made scene (160×200)."""
    image, floor, _, alpha, shadow, _ = planks_shadow_scene(seed)
    ys, xs = np.nonzero(alpha > 0.1)
    return image, floor, shadow, [int(xs.min()) - 2, int(ys.min()) - 2, int(xs.max()) + 3, int(ys.max()) + 3]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="49,3,11")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    classical, effects = Pipeline.from_config("classical"), Pipeline.from_config("classical+effects")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        image, floor, shadow, box = scene(seed)
        prompt = Prompt(boxes=[box])
        plain, res = classical(image, prompt), effects(image, prompt)
        region = (shadow > 0.05) & (res.alpha < 0.99)
        print(f"seed {seed}: found {[e.kind for e in effects.effects.last]}, B PSNR in the shadow "
              f"{psnr(plain.background, floor, region):.1f} -> {psnr(res.background, floor, region):.1f} dB")
        tiles = [image, np.dstack([res.alpha] * 3), res.background, floor,
                 move(res.layers, 1, 40, 0).composite(), move(plain.layers, 1, 40, 0).composite()]
        rows.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=1.0) for t in tiles]))
    Image.fromarray((np.clip(np.vstack(rows), 0, 1) * 255 + 0.5).astype(np.uint8)).save(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
