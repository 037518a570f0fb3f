#!/usr/bin/env python
"""Write folders of licence-clean procedural objects and backgrounds (``layerkit/training/procedural.py``).

``OUT/fg/obj_NNN.png`` (straight RGBA, cropped) and ``OUT/bg/bg_NNN.jpg``, seeded, for
``layerkit make-dataset --fg-dir OUT/fg --bg-dir OUT/bg``: the data anything the project fits
(the ``cues`` orderer's weights) is fitted on, so that no fitted number derives from the dev set's
GPL objects (docs/multilayer.md, "Fitting data").

Usage:
    python benchmarks/procedural_data.py -o proc/ [--objects 48] [--backgrounds 12] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layerkit.training.procedural import background_rgb, object_rgba  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--output", type=Path, required=True, help="folder that gets fg/ and bg/")
    p.add_argument("--objects", type=int, default=48, help="number of objects (default 48)")
    p.add_argument("--backgrounds", type=int, default=12, help="number of backgrounds (default 12)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = p.parse_args(argv)
    if args.objects < 1 or args.backgrounds < 1:
        print("procedural_data.py: --objects and --backgrounds must be at least 1", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    (args.output / "fg").mkdir(parents=True, exist_ok=True)
    (args.output / "bg").mkdir(parents=True, exist_ok=True)
    for i in range(args.objects):
        Image.fromarray(object_rgba(rng), "RGBA").save(args.output / "fg" / f"obj_{i:03d}.png")
    for i in range(args.backgrounds):
        h, w = (480, 640) if rng.uniform() < 0.7 else (640, 480)
        Image.fromarray(background_rgb(rng, h, w)).save(args.output / "bg" / f"bg_{i:03d}.jpg", quality=92)
    print(f"wrote {args.objects} objects to {args.output / 'fg'} and {args.backgrounds} backgrounds to {args.output / 'bg'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
