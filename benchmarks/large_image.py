"""Peak memory and time on a 12-MP photo with an object covering ~5 % (ROI processing target).

Builds a 4000×3000 composite from the shipped public-domain astronaut photo (upscaled as the
background; a soft-edged elliptical cut-out of the face region as the object, ~5 % of the canvas),
runs the pipeline with a box prompt in a fresh process and reports wall time, per-stage time,
peak RSS and alpha soft-IoU against the known ground truth.

    .venv/bin/python benchmarks/large_image.py [--config classical] [--width 4000 --height 3000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from importlib import resources

import cv2
import numpy as np


def make_large(width: int, height: int, cover: float = 0.05) -> tuple[np.ndarray, np.ndarray, list[int]]:
    from layerkit.io.image import load_image

    src = load_image(str(resources.files("layerkit") / "assets" / "astronaut.png"))
    bg = cv2.resize(src[:, ::-1], (width, height), interpolation=cv2.INTER_CUBIC)  # mirrored: differs from the object
    face = src[20:200, 140:320]
    ow = int(np.sqrt(cover * width * height * face.shape[1] / face.shape[0]))
    oh = int(ow * face.shape[0] / face.shape[1])
    obj = cv2.resize(face, (ow, oh), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[:oh, :ow].astype(np.float32)
    d = np.sqrt(((xx - ow / 2) / (ow / 2)) ** 2 + ((yy - oh / 2) / (oh / 2)) ** 2)
    a = np.clip((1.0 - d) * 40.0, 0, 1).astype(np.float32)  # ~2.5 % of the radius soft
    x0, y0 = int(width * 0.55), int(height * 0.3)
    alpha = np.zeros((height, width), np.float32)
    alpha[y0:y0 + oh, x0:x0 + ow] = a
    img = bg.copy()
    img[y0:y0 + oh, x0:x0 + ow] = a[..., None] * obj + (1 - a[..., None]) * bg[y0:y0 + oh, x0:x0 + ow]
    img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    return img, alpha, [x0, y0, x0 + ow, y0 + oh]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="classical")
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--cover", type=float, default=0.05)
    args = ap.parse_args()
    img, gt, box = make_large(args.width, args.height, args.cover)
    from layerkit import Pipeline, Prompt

    pipe = Pipeline.from_config(args.config)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    res = pipe(img, Prompt(boxes=[box]))
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    iou = float(np.minimum(res.alpha, gt).sum() / np.maximum(res.alpha, gt).sum())
    print(json.dumps({"image": f"{args.width}x{args.height}", "object_cover": round(float((gt > 0).mean()), 4),
                      "roi": res.roi, "seconds": round(dt, 2), "peak_rss_mb": round(peak),
                      "rss_before_call_mb": round(rss_before), "alpha_soft_iou": round(iou, 4),
                      "timings": {k: round(v, 2) for k, v in res.timings.items()}}, indent=1))


if __name__ == "__main__":
    main()
