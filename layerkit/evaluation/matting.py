"""Matting evaluation on real photos with ground-truth mattes and trimaps.

The folder layout is the alphamatting.com one: ``<ID>_input.png`` (RGB), ``<ID>_alpha.png`` (L,
ground-truth matte) and ``<ID>_trimap1.png``, ``<ID>_trimap2.png``… (L: 0 background, 255
foreground, anything else unknown — 128 in practice). Each (image, trimap) pair is one sample:
the pipeline's ``matter`` stage solves the matte from the image and the trimap, and SAD, MSE,
gradient and connectivity errors are summed over the trimap's unknown pixels, as the Deep
Image Matting evaluation code does.

Protocol details (stated so numbers are comparable): the predicted matte is clamped to the
trimap's known values (0 / 1) and rounded to 8 bits — what saving it as a PNG would do —
before scoring; the ground truth is the 8-bit PNG divided by 255.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerkit.errors import DataError
from layerkit.evaluation import metrics as M
from layerkit.evaluation.runner import EtaProgress, peak_rss_mb, run_items
from layerkit.io.image import load_image, load_mask

#: ``(key, header, higher_is_better)``
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("sad", "SAD/1e3", False),
    ("mse_e3", "MSE×1e3", False),
    ("grad", "grad/1e3", False),
    ("conn", "conn/1e3", False),
    ("seconds", "s/image", False),
    ("rss_mb", "peak RSS MiB", False),
)
METRIC_KEYS = tuple(k for k, _, _ in METRICS)
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (("id", "image / trimap"), ("unknown_px", "unknown px"),
                                              *((k, h) for k, h, _ in METRICS), ("error", "error"))


@dataclass(frozen=True)
class MattingSample:
    """One image with one of its trimaps.

    Attributes:
        id: ``"<ID>/trimap<k>"``.
        image: path of ``<ID>_input.png``.
        alpha: path of ``<ID>_alpha.png``.
        trimap: path of ``<ID>_trimap<k>.png``.
    """

    id: str
    image: Path
    alpha: Path
    trimap: Path


def find_matting_samples(folder: str | Path, trimaps: Sequence[str] = ("1", "2")) -> list[MattingSample]:
    """List and check the (image, trimap) pairs of a matting folder.

    Args:
        folder: holds ``<ID>_input.png``, ``<ID>_alpha.png``, ``<ID>_trimap<k>.png``.
        trimaps: the trimap suffixes to evaluate (``"1"``, ``"2"``…).

    Returns:
        Samples sorted by image id, then trimap.

    Raises:
        DataError: missing folder, no ``*_input.png``, or an image without its matte or a trimap.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"matting folder {str(root)!r} does not exist or is not a folder")
    ids = sorted(m.group(1) for p in root.iterdir() if (m := re.fullmatch(r"(.+)_input\.png", p.name, re.IGNORECASE)))
    if not ids:
        raise DataError(f"{str(root)!r} holds no <ID>_input.png; expected <ID>_input.png, <ID>_alpha.png, <ID>_trimap1.png…")
    if not trimaps:
        raise DataError("no trimap selected; use --trimaps 1,2")
    samples = []
    for i in ids:
        alpha = root / f"{i}_alpha.png"
        if not alpha.is_file():
            raise DataError(f"{str(root)!r}: {i}_input.png has no ground-truth matte {i}_alpha.png")
        for k in trimaps:
            tri = root / f"{i}_trimap{k}.png"
            if not tri.is_file():
                raise DataError(f"{str(root)!r}: {i}_input.png has no trimap {tri.name}; choose the trimaps with --trimaps")
            samples.append(MattingSample(f"{i}/trimap{k}", root / f"{i}_input.png", alpha, tri))
    return samples


def read_trimap(path: str | Path) -> np.ndarray:
    """A trimap file as ``H×W`` float32: 0 background, 1 foreground, 0.5 unknown.

    8-bit values 0 and 255 are the known regions; every other value is unknown.
    """
    t = np.rint(load_mask(path) * 255.0)
    return np.where(t <= 0, 0.0, np.where(t >= 255, 1.0, 0.5)).astype(np.float32)


def finalize_matte(pred: np.ndarray, trimap: np.ndarray, quantize: bool = True) -> np.ndarray:
    """Clamp a predicted matte to the trimap's known values and round it to 8 bits.

    Args:
        pred: ``H×W`` predicted alpha.
        trimap: ``H×W`` trimap (0, 0.5, 1).
        quantize: round to multiples of 1/255.

    Returns:
        ``H×W`` float64 alpha in ``[0, 1]``.
    """
    a = np.clip(np.asarray(pred, np.float64), 0.0, 1.0)
    a = np.where(trimap == 0.0, 0.0, np.where(trimap == 1.0, 1.0, a))
    return np.rint(a * 255.0) / 255.0 if quantize else a


def evaluate_matting_sample(matter: Callable[[np.ndarray, np.ndarray], np.ndarray], sample: MattingSample,
                            quantize: bool = True, on_result: Callable[[MattingSample, dict], None] | None = None
                            ) -> dict[str, Any]:
    """Solve one matte and score it over the unknown region.

    Args:
        matter: ``(image H×W×3, trimap H×W) → alpha H×W``, e.g. ``pipe.matter``.
        sample: the sample.
        quantize: round the prediction to 8 bits first (see the module docstring).
        on_result: optional ``callback(sample, arrays)`` with ``image``, ``trimap``, ``gt``, ``pred``.

    Returns:
        ``id``, ``trimap``, ``unknown_px``, ``sad``, ``mse_e3``, ``grad``, ``conn``, ``seconds``, ``rss_mb``, ``size``.
    """
    image = load_image(sample.image)
    gt = np.rint(load_mask(sample.alpha).astype(np.float64) * 255.0) / 255.0  # exact k/255, as the prediction
    trimap = read_trimap(sample.trimap)
    if gt.shape != image.shape[:2] or trimap.shape != gt.shape:
        raise DataError(f"{sample.id}: image {image.shape[:2]}, matte {gt.shape} and trimap {trimap.shape} differ in size")
    t0 = time.perf_counter()
    raw = np.asarray(matter(image, trimap))
    seconds = time.perf_counter() - t0
    if raw.shape != gt.shape:
        raise DataError(f"{sample.id}: the matter returned {raw.shape}, expected {gt.shape}")
    pred = finalize_matte(raw, trimap, quantize)
    unknown = trimap == 0.5
    rec: dict[str, Any] = {"id": sample.id, "trimap": sample.trimap.name, "unknown_px": int(unknown.sum())}
    rec.update(M.alpha_metrics(pred, gt, unknown, connectivity=True))
    rec.update({"seconds": seconds, "rss_mb": peak_rss_mb(), "size": [int(gt.shape[1]), int(gt.shape[0])]})
    if on_result is not None:
        on_result(sample, {"image": image, "trimap": trimap, "gt": gt, "pred": pred})
    return rec


def evaluate_matting(matter: Callable[[np.ndarray, np.ndarray], np.ndarray], samples: Sequence[MattingSample],
                     quantize: bool = True, progress: EtaProgress | None = None,
                     on_result: Callable[[MattingSample, dict], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate every sample; a failing one is recorded with its ``error`` and the run goes on."""
    return run_items(samples, lambda s: evaluate_matting_sample(matter, s, quantize, on_result), lambda s: s.id, progress,
                     lambda r: f"ok {r['seconds']:.1f} s, SAD {r['sad']:.2f}, MSE×1e3 {r['mse_e3']:.1f}")


def matting_thumbs(arrays: dict[str, np.ndarray], height: int = 128) -> dict[str, str]:
    """Report pictures of one matting sample: input, trimap, GT α, predicted α, ``|Δα|``."""
    from layerkit.evaluation.visuals import error_map, thumbnail

    pics = {"input": arrays["image"], "trimap": arrays["trimap"], "GT α": arrays["gt"], "pred α": arrays["pred"],
            "|Δα|": error_map(arrays["pred"], arrays["gt"])}
    return {k: thumbnail(v, height) for k, v in pics.items()}


def per_trimap_means(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean metrics per trimap file suffix (``trimap1``, ``trimap2``…), one row each."""
    from layerkit.evaluation.runner import summarise

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r["id"]).split("/")[-1], []).append(r)
    rows = []
    for name, recs in sorted(groups.items()):
        row = summarise(recs, METRIC_KEYS)
        row.update(id=f"mean {name}", unknown_px=None)
        rows.append(row)
    return rows
