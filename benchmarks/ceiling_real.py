#!/usr/bin/env python
"""How much of the α error on real photos is segmentation: the default against two ceilings.

On a folder of real photos with GT mattes (``<ID>_input.png`` + ``<ID>_alpha.png``, e.g.
``../shared/data/dev/real_alpha``), with the user-style prompts of :mod:`layerkit.evaluation.realphoto`:

* ``default`` — the config as it is;
* ``init=<name>`` — the segmenter with one GrabCut initialisation only (each of ``segmenter.inits``),
  part restoration off;
* ``init=box`` — the plain chain's whole-box initialisation as one more hypothesis (when
  ``segmenter.inits`` lacks it), at the segmenter's working size;
* ``best init (oracle)`` — per photo the best of those runs by α SAD (it reads the ground truth);
* ``chain mask → trimap/matte`` — the plain chain's GrabCut mask given to the config as a mask
  prompt: where the chain wins, this row says whether its *mask* wins (this row near the chain's)
  or the rest of its chain (this row near the default's);
* ``GT mask (oracle)`` — the GT mask (α > 0.5) as a mask prompt: trimap + matting given a perfect
  segmentation;
* ``plain chain`` — the peer (GrabCut → closed-form → Telea) on the same prompts.

Usage:
    python benchmarks/ceiling_real.py ../shared/data/dev/real_alpha -o /tmp/ceiling_real [--prompt box] [--ids GT05,GT07]

Writes ``OUT/ceiling.json`` (per-photo SAD / soft-IoU of every row) and ``OUT/ceiling.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ceiling import best_of, summary  # noqa: E402
from layerkit import Pipeline  # noqa: E402
from layerkit.errors import LayerkitError  # noqa: E402
from layerkit.evaluation import realphoto as R  # noqa: E402
from layerkit.io.atomic import check_output  # noqa: E402

KEYS = ("sad", "iou")


def per_photo(predict, samples: list, prompt: str) -> dict[str, dict[str, float]]:  # noqa: ANN001
    """``{photo id: {"sad": …, "iou": …}}`` (failed photos are left out)."""
    return {r["id"]: {k: float(r[k]) for k in KEYS} for r in R.evaluate_real(predict, samples, prompt) if "error" not in r}


def chain_mask_predictor(pipe):  # noqa: ANN001, ANN201
    """``(image, prompt) → result``: the plain chain's GrabCut mask for ``prompt``, as a mask prompt to ``pipe``."""
    from layerkit.evaluation.peer import grabcut_mask
    from layerkit.types import Prompt

    return lambda image, prompt: pipe(image, Prompt(mask=grabcut_mask(image, prompt)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="folder of <ID>_input.png + <ID>_alpha.png")
    ap.add_argument("-o", "--output", required=True, help="output folder (ceiling.json, ceiling.md)")
    ap.add_argument("--config", default="classical", help="config spec (default: classical)")
    ap.add_argument("--prompt", default="box", choices=("box", "point", "box+point"), help="prompt of the non-oracle rows")
    ap.add_argument("--ids", default=None, help="comma-separated photo ids (default: all)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = ap.parse_args(argv)
    try:
        check_output(args.output, args.overwrite)
        samples = R.find_real_samples(args.data, args.ids.split(",") if args.ids else None)
        pipe = Pipeline.from_config(args.config)
        inits = list(getattr(pipe.segmenter, "inits", ()))
        if len(inits) < 2:
            raise LayerkitError(f"config {args.config!r}: the segmenter has no list of initialisations (segmenter.inits) to compare")
        rows = {"default": per_photo(R.pipeline_predictor(pipe), samples, args.prompt)}
        for init in inits:
            print(f"init={init}", file=sys.stderr)
            one = Pipeline.from_config(args.config, {"segmenter.inits": [init], "segmenter.restore_parts": 1.0})
            rows[f"init={init}"] = per_photo(R.pipeline_predictor(one), samples, args.prompt)
        if "box" not in inits:
            print("init=box", file=sys.stderr)
            one = Pipeline.from_config(args.config, {"segmenter.inits": ["box"], "segmenter.restore_parts": 1.0})
            rows["init=box"] = per_photo(R.pipeline_predictor(one), samples, args.prompt)
        rows["best init (oracle)"] = best_of([rows[f"init={i}"] for i in [*inits, "box"] if f"init={i}" in rows])
        gt_pipe = Pipeline.from_config(args.config, {"segmenter.refine_mask": False})
        rows["GT mask (oracle)"] = per_photo(R.pipeline_predictor(gt_pipe), samples, "gt-mask")
        rows["chain mask → trimap/matte"] = per_photo(chain_mask_predictor(gt_pipe), samples, args.prompt)
        rows["plain chain"] = per_photo(R.peer_predictor(), samples, args.prompt)
    except LayerkitError as e:
        print(f"ceiling_real.py: {e}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    lines = summary(rows)
    (out / "ceiling.json").write_text(json.dumps({"data": args.data, "config": args.config, "prompt": args.prompt,
                                                  "summary": lines, "per_photo": rows}, indent=1))
    ids = sorted(rows["default"])
    md = [f"# α ceilings on real photos: {args.config}, {args.prompt} prompts, {args.data}", "",
          "| row | photos | α SAD/1e3 | α soft-IoU | worst IoU |", "|---|---:|---:|---:|---:|"]
    md += [f"| {r['row']} | {r['n']} | {r['sad']:.3f} | {r['iou']:.4f} | "
           f"{min(rows[r['row']][i]['iou'] for i in ids if i in rows[r['row']]):.3f} |" for r in lines]
    (out / "ceiling.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
