"""Compare refiners on a folder of composites with ground truth, given the same inputs.

Each sample folder ``NNNN/`` holds ``composite.png``, ``gt_alpha.png``, ``gt_fg.png`` (RGBA) and
``gt_bg.png`` (the layout of ``make_composites.py``). Every refiner gets the ground-truth alpha
and the classical decomposer's ``F̂``/``B̂``; scores:

* ``bg_psnr_occ`` — background PSNR (dB) where ``α_gt > 0.01`` (higher is better);
* ``fg_l1`` — foreground colour L1 weighted by ``α_gt`` (lower is better);
* ``bg_band_hf_db`` / ``fg_band_hf_db`` — PSNR of the finest Haar high bands against the truth
  in the soft band (higher = detail more correct), and ``*_band_sharp``, the energy ratio of
  those bands to the truth's (1 = as sharp as the truth).

Usage::

    python -m layerkit.training.compare /tmp/dev30 --checkpoint runs/hfa/export/hfa.pt -o report.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from layerkit.errors import DataError
from layerkit.training.losses import band_sharpness, bg_psnr_occluded, fg_l1_weighted

Refiner = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def load_sample(folder: Path) -> dict[str, np.ndarray]:
    """``image``, ``alpha``, ``fg``, ``bg`` of one sample folder (float32, ``[0, 1]``, HWC)."""
    from PIL import Image

    def read(name: str, mode: str) -> np.ndarray:
        p = folder / name
        if not p.is_file():
            raise DataError(f"{str(p)!r} is missing; a sample folder needs composite.png, gt_alpha.png, gt_fg.png, gt_bg.png")
        with Image.open(p) as im:
            return np.asarray(im.convert(mode), np.float32) / 255.0

    return {"image": read("composite.png", "RGB"), "alpha": read("gt_alpha.png", "L"),
            "fg": read("gt_fg.png", "RGBA")[..., :3], "bg": read("gt_bg.png", "RGB")}


def score(f: np.ndarray, b: np.ndarray, gt: dict[str, np.ndarray]) -> dict[str, float]:
    """Metrics of one refined ``(F, B)`` pair against the sample's truth."""
    def t(x: np.ndarray) -> torch.Tensor:
        x = x[..., None] if x.ndim == 2 else x
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))[None]

    F, B, a = t(np.clip(f, 0, 1)), t(np.clip(b, 0, 1)), t(gt["alpha"])
    fg, bg = t(gt["fg"]), t(gt["bg"])
    bs, bh = band_sharpness(B, bg, a)
    fs, fh = band_sharpness(F * a, fg * a, a)
    return {"bg_psnr_occ": float(bg_psnr_occluded(B, bg, a)[0]), "fg_l1": float(fg_l1_weighted(F, fg, a)[0]),
            "bg_band_hf_db": float(bh[0]), "bg_band_sharp": float(bs[0]),
            "fg_band_hf_db": float(fh[0]), "fg_band_sharp": float(fs[0])}


def compare(root: str | Path, refiners: dict[str, Refiner], cache: str | Path | None = None,
            samples: Sequence[str] | None = None, decomposer: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score every refiner on every sample folder under ``root``.

    Args:
        root: folder of sample folders.
        refiners: ``{name: refiner}``; ``"none"`` may map to an identity to score ``F̂``/``B̂``.
        cache: folder for the classical ``F̂``/``B̂`` (``.npz`` per sample), reused if present.
        samples: sample folder names (default: all).
        decomposer: ``ClassicalDecomposer`` arguments (default: its defaults, as in the
            ``classical`` pipeline).

    Returns:
        ``{"per_sample": {sample: {refiner: metrics}}, "mean": {refiner: metrics}}``.
    """
    from layerkit.modules.decomposer.classical import ClassicalDecomposer

    root = Path(root)
    names = list(samples) if samples else sorted(p.name for p in root.iterdir() if (p / "composite.png").is_file())
    if not names:
        raise DataError(f"no sample folders (NNNN/composite.png) under {str(root)!r}")
    classical = ClassicalDecomposer(**(decomposer or {}))
    per: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        gt = load_sample(root / name)
        hit = Path(cache) / f"{name}.npz" if cache else None
        if hit is not None and hit.is_file():
            z = np.load(hit)
            f_hat, b_hat = z["fg_hat"], z["bg_hat"]
        else:
            f_hat, b_hat = classical(gt["image"], gt["alpha"])
            if hit is not None:
                hit.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(hit, fg_hat=f_hat, bg_hat=b_hat)
        per[name] = {}
        h, w = gt["alpha"].shape
        padded = [_pad(x, 8) for x in (gt["image"], gt["alpha"], f_hat, b_hat)]
        for rname, refiner in refiners.items():
            f, b = refiner(*padded)
            per[name][rname] = score(f[:h, :w], b[:h, :w], gt)
    keys = next(iter(next(iter(per.values())).values())).keys()
    mean = {r: {k: float(np.nanmean([per[n][r][k] for n in names])) for k in keys} for r in refiners}
    return {"per_sample": per, "mean": mean}


def _pad(x: np.ndarray, multiple: int) -> np.ndarray:
    """Edge-pad the bottom/right of an ``H×W[×C]`` array to a multiple of ``multiple``.

    Every refiner gets the same padded input, whose size every Haar level and net divides
    (earlier weight-free refiners failed on other sizes); scores use the original pixels only.
    """
    ph, pw = (-x.shape[0]) % multiple, (-x.shape[1]) % multiple
    return np.pad(x, ((0, ph), (0, pw)) + ((0, 0),) * (x.ndim - 2), mode="edge") if (ph or pw) else x


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: WaveletRefiner vs HFARefiner (and the unrefined inputs)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", help="folder of NNNN/ sample folders")
    ap.add_argument("--checkpoint", action="append", default=[], help="HFA checkpoint (repeatable)")
    ap.add_argument("--cache", default=None, help="folder caching the classical F̂/B̂")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--inpaint", default=None, help="classical decomposer's inpaint_method (default: its default)")
    ap.add_argument("--hole-alpha", type=float, default=None, help="classical decomposer's hole_alpha")
    ap.add_argument("-o", "--output", default=None, help="write the JSON report here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from layerkit.modules.refiner.hfa import HFARefiner
    from layerkit.modules.refiner.wavelet import WaveletRefiner

    refiners: dict[str, Refiner] = {"none": lambda c, a, f, b: (f, b),
                                    "wavelet": WaveletRefiner()}
    for ck in args.checkpoint:
        refiners[f"hfa:{ck}"] = HFARefiner(checkpoint=ck)
    dec = {k: v for k, v in (("inpaint_method", args.inpaint), ("hole_alpha", args.hole_alpha)) if v is not None}
    report = compare(args.root, refiners, cache=args.cache, decomposer=dec)
    report["decomposer"] = dec
    text = json.dumps(report, indent=1)
    if args.output:
        Path(args.output).write_text(text)
    json.dump(report["mean"], sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
