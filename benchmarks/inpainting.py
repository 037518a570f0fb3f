"""Compare background-completion methods on composites with exact ground truth.

For every sample folder (``composite.png``, ``gt_alpha.png``, ``gt_bg.png``, ``box.json`` as made
by ``make_composites.py``) this script runs the classical decomposer's steps with a given matte:

1. crop to the object's box plus the pipeline's margin (``expand_box(box, 0.25, 24 px)``);
2. pymatting's multilevel foreground/background estimation with that matte (done once);
3. ``visible = C where α = 0 else B̂``; ``hole = α ≥ hole_alpha`` grown by ``hole_dilate`` px;
4. ``inpaint(visible, hole, method)`` for each method (only this step is timed);
5. paste the crop back into the composite and compare with the GT background.

It prints a Markdown table: PSNR over the occluded region (GT α > 0.01), over the fully hidden
region (GT α ≥ 0.99) and over the whole image (means of per-sample dB), and seconds per image.

Usage:
    python benchmarks/inpainting.py /tmp/dev30 [--n 30] [--methods harmonic,telea]
        [--matte gt|pipeline] [--hole-alpha 0.9] [--hole-dilate 1] [--sweep]
        [--scale] [--grid docs/img/inpainting_astronaut.png]

``--matte pipeline`` takes the matte from the classical pipeline (GrabCut + trimap +
closed-form, box prompt) instead of the GT alpha; ``--sweep`` also tries other hole thresholds
with the first method; ``--scale`` times each method (and its peak RSS, in a fresh process) on
a 12-MP-photo-sized crop; ``--grid`` writes a picture of each method's fill on scikit-image's
public-domain astronaut photo with a synthetic hole.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from layerkit.ops.compositing import psnr  # noqa: E402
from layerkit.ops.inpainting import METHODS, inpaint  # noqa: E402
from layerkit.ops.roi import expand_box  # noqa: E402

REFERENCE = "biharmonic-fullres"  # scikit-image's solver on the full-resolution hole (not a METHOD)


def fill(image: np.ndarray, hole: np.ndarray, method: str) -> np.ndarray:
    """``inpaint`` plus the full-resolution biharmonic reference."""
    if method == REFERENCE:
        from skimage.restoration import inpaint_biharmonic

        out = inpaint_biharmonic(image, hole, channel_axis=-1).astype(np.float32)
        return np.where(hole[..., None], out, image)
    return inpaint(image, hole, method)


def read_sample(folder: Path) -> dict[str, np.ndarray]:
    """Composite ``c``, GT alpha ``a`` and GT background ``b`` (float32 in [0, 1]) and ``box`` (xyxy)."""
    def rd(name: str) -> np.ndarray:
        return np.asarray(Image.open(folder / name), np.float32) / 255.0

    box = json.loads((folder / "box.json").read_text())["box_xyxy"]
    return {"c": rd("composite.png")[..., :3], "a": rd("gt_alpha.png"), "b": rd("gt_bg.png")[..., :3],
            "box": np.asarray(box, np.int64)}


def pipeline_matte(pipe: object, path: Path, box: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Run the classical pipeline with a box prompt; return its ROI and the matte it passed on."""
    from layerkit.types import Prompt

    seen: dict[str, np.ndarray] = {}
    decomposer = pipe.decomposer  # type: ignore[attr-defined]

    def capture(img: np.ndarray, alpha: np.ndarray, prompt: object = None) -> tuple[np.ndarray, np.ndarray]:
        seen["alpha"] = alpha
        return img, img  # the rest of the pipeline is not needed here

    pipe.decomposer, refiner = capture, pipe.refiner  # type: ignore[attr-defined]
    pipe.refiner = None  # type: ignore[attr-defined]
    try:
        res = pipe(str(path / "composite.png"), Prompt(boxes=box[None].astype(np.float32)))  # type: ignore[operator]
    finally:
        pipe.decomposer, pipe.refiner = decomposer, refiner  # type: ignore[attr-defined]
    return tuple(res.roi), seen["alpha"]  # type: ignore[return-value]


def evaluate(root: Path, n: int, jobs: list[tuple[str, float, int]], matte: str) -> dict:
    """Per job ``(method, hole_alpha, hole_dilate)``: mean PSNRs and inpainting seconds over ``n`` samples."""
    from pymatting import estimate_foreground_ml

    pipe = None
    if matte == "pipeline":
        from layerkit.pipelines.decompose import Pipeline

        pipe = Pipeline.from_config("classical")
    rows: dict[tuple[str, float, int], list[tuple[float, float, float, float]]] = {}
    folders = sorted(p for p in root.iterdir() if (p / "box.json").exists())[:n]
    for folder in folders:
        s = read_sample(folder)
        h, w = s["a"].shape
        if pipe is None:
            x0, y0, x1, y1 = expand_box(tuple(int(v) for v in s["box"]), (h, w), 0.25, 24)  # type: ignore[arg-type]
            alpha = s["a"][y0:y1, x0:x1]
        else:
            (x0, y0, x1, y1), alpha = pipeline_matte(pipe, folder, s["box"])
        crop = s["c"][y0:y1, x0:x1]
        with contextlib.redirect_stdout(io.StringIO()):
            _, bg = estimate_foreground_ml(crop.astype(np.float64), alpha.astype(np.float64), regularization=1e-5,
                                           return_background=True)
        visible = np.where((alpha <= 0)[..., None], crop, bg).astype(np.float32)
        for m, hole_alpha, dilate in jobs:
            hole = alpha >= hole_alpha
            if dilate > 0:
                hole = cv2.dilate(hole.astype(np.uint8), np.ones((2 * dilate + 1,) * 2, np.uint8)).astype(bool)
            t0 = time.perf_counter()
            out = fill(visible, hole, m)
            dt = time.perf_counter() - t0
            full = s["c"].copy()
            full[y0:y1, x0:x1] = np.clip(out, 0, 1)
            rows.setdefault((m, hole_alpha, dilate), []).append((
                psnr(full, s["b"], s["a"] > 0.01), psnr(full, s["b"], s["a"] >= 0.99), psnr(full, s["b"]), dt))
        print(f"  {folder.name} done", file=sys.stderr, flush=True)
    return {k: np.nanmean(np.asarray(v, np.float64), axis=0) for k, v in rows.items()}


def print_table(results: dict, title: str) -> None:
    print(f"\n{title}\n")
    print("| method | hole α ≥ | dilate | PSNR occluded (α>0.01) | PSNR fully hidden (α≥0.99) | PSNR full image | s / image |")
    print("|---|---|---|---|---|---|---|")
    for (m, ha, dil), (p_occ, p_hid, p_full, sec) in results.items():
        print(f"| {m} | {ha:g} | {dil} | {p_occ:.2f} | {p_hid:.2f} | {p_full:.2f} | {sec:.3f} |")


# ---------------------------------------------------------------------------- 12-MP scale test
def scale_case(side: int = 1160, hole_px: int = 600_000) -> tuple[np.ndarray, np.ndarray]:
    """A crop the pipeline would take from a 12-MP photo with a ~5 % object: ``side²`` px (≈1.35 MP)
    of an upscaled public-domain photo, with an elliptical hole of ``hole_px`` pixels."""
    from skimage.data import astronaut

    img = cv2.resize(astronaut().astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[:side, :side]
    ry = np.sqrt(hole_px / np.pi / 1.3)
    rx = 1.3 * ry
    hole = ((yy - side / 2) / ry) ** 2 + ((xx - side / 2) / rx) ** 2 <= 1.0
    return np.clip(img, 0, 1), hole


def _scale_worker(method: str, queue: mp.Queue) -> None:
    img, hole = scale_case()
    fill(img[:64, :64], np.pad(np.ones((8, 8), bool), 28), method)  # warm-up: numba compile / imports
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    t0 = time.perf_counter()
    fill(img, hole, method)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    queue.put((dt, base, peak, int(hole.sum()), img.shape[0] * img.shape[1]))


def scale_test(methods: list[str]) -> None:
    print("\n12-MP crop: seconds and peak RSS of a fresh process (MiB; 'before' = after imports + warm-up)\n")
    print("| method | crop px | hole px | s | peak RSS before | peak RSS after |")
    print("|---|---|---|---|---|---|")
    ctx = mp.get_context("spawn")
    for m in methods:
        q: mp.Queue = ctx.Queue()
        p = ctx.Process(target=_scale_worker, args=(m, q))
        p.start()
        dt, base, peak, nh, npx = q.get()
        p.join()
        print(f"| {m} | {npx:,} | {nh:,} | {dt:.2f} | {base:.0f} | {peak:.0f} |", flush=True)


# ---------------------------------------------------------------------------- picture
def save_grid(path: Path, methods: list[str], width: int = 200) -> None:
    """Each method's fill of a synthetic hole in scikit-image's (public-domain, NASA) astronaut photo."""
    from skimage.data import astronaut

    img = astronaut().astype(np.float32)[:, :, :3] / 255.0
    img = cv2.resize(img, (384, 384), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[:384, :384]
    hole = (((yy - 105) / 100.0) ** 2 + ((xx - 305) / 34.0) ** 2 <= 1) | ((xx - 40) ** 2 + (yy - 225) ** 2 <= 34 ** 2)
    panels = [("photo", img), ("hole", np.where(hole[..., None], 1.0, img))]
    panels += [(m, fill(img, hole, m)) for m in methods]
    tiles = []
    for name, im in panels:
        t = cv2.resize(np.clip(im, 0, 1), (width, width), interpolation=cv2.INTER_AREA)
        t = np.pad((t * 255 + 0.5).astype(np.uint8), ((18, 2), (2, 2), (0, 0)), constant_values=255)
        cv2.putText(t, name, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(t)
    cols = 5
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    grid = np.concatenate([np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)], 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, optimize=True)
    print(f"\nwrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="folder of sample folders (make_composites.py --out)")
    ap.add_argument("--n", type=int, default=30, help="number of samples (default 30; 0 = only --scale / --grid)")
    ap.add_argument("--methods", default=",".join(list(METHODS) + [REFERENCE]),
                    help=f"comma-separated; valid: {', '.join(list(METHODS) + [REFERENCE])}")
    ap.add_argument("--matte", choices=("gt", "pipeline"), default="gt")
    ap.add_argument("--hole-alpha", type=float, default=0.9)
    ap.add_argument("--hole-dilate", type=int, default=1)
    ap.add_argument("--sweep", action="store_true", help="also try other hole thresholds with the first method")
    ap.add_argument("--scale", action="store_true", help="time + peak RSS on a 12-MP-photo-sized crop")
    ap.add_argument("--grid", type=Path, default=None, help="write a PNG of every method's fill here")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS and m != REFERENCE]
    if bad:
        ap.error(f"unknown method(s) {bad}; valid: {', '.join(list(METHODS) + [REFERENCE])}")
    cv2.setNumThreads(1)

    main_jobs = [(m, args.hole_alpha, args.hole_dilate) for m in methods]
    sweep_jobs = [(methods[0], ha, d) for ha in (0.9, 0.5, 0.3, 0.2) for d in (0, 1, 2)] if args.sweep else []
    if args.n > 0:
        res = evaluate(args.data, args.n, main_jobs + [j for j in sweep_jobs if j not in main_jobs], args.matte)
        print_table({j: res[j] for j in main_jobs}, f"{args.n} samples of {args.data}, matte = {args.matte}")
        if args.sweep:
            print_table({j: res[j] for j in sweep_jobs}, f"hole threshold sweep, method {methods[0]}, matte = {args.matte}")
    if args.scale:
        scale_test([m for m in methods if m != REFERENCE])
    if args.grid is not None:
        save_grid(args.grid, [m for m in methods if m != REFERENCE])


if __name__ == "__main__":
    main()
