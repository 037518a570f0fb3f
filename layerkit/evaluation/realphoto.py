"""Evaluation on real photographs that have a ground-truth matte and nothing else.

The folder layout is the alphamatting.com one: ``<ID>_input.png`` (RGB) and ``<ID>_alpha.png``
(L, the ground-truth matte); trimap files beside them are ignored. There is no ground-truth
foreground or background, so only the matte is scored — over the **whole image** (SAD, MSE,
gradient error, soft-IoU), with time and peak memory.

The prompt is derived from the ground truth the way a user would give it:

* ``box`` — the box around ``α > 0.5``, padded on every side by 4 % of the image's long side
  (:data:`BOX_PAD`) and clipped to the image;
* ``point`` — the pixel deepest inside ``α > 0.5`` (largest distance to the nearest pixel
  outside it, ``cv2.distanceTransform``; the image border counts as outside);
* ``box+point`` — both; ``gt-mask`` — the mask ``α > 0.5`` itself (the matting stages given a
  perfect segmentation: a ceiling).

Every run of a config is paired with the plain public-library chain of
:mod:`layerkit.evaluation.peer`, on the same prompts, in the same process.
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
from layerkit.types import Prompt

#: box padding on each side, as a fraction of the image's long side
BOX_PAD = 0.04
#: GT alpha above which a pixel is object (box, point and gt-mask prompts)
OBJECT_ALPHA = 0.5
PROMPT_KINDS = ("box", "point", "box+point", "gt-mask")
#: ``(key, header, higher_is_better)``
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("sad", "α SAD/1e3", False),
    ("mse_e3", "α MSE×1e3", False),
    ("grad", "α grad/1e3", False),
    ("iou", "α soft-IoU", True),
    ("seconds", "s/image", False),
    ("rss_mb", "peak RSS MiB", False),
)
METRIC_KEYS = tuple(k for k, _, _ in METRICS)
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (("id", "image"), *((k, h) for k, h, _ in METRICS), ("error", "error"))
#: the name of the peer run in reports
PEER_NAME = "plain chain (GrabCut → closed-form → Telea)"


@dataclass(frozen=True)
class RealSample:
    """One photo with its ground-truth matte.

    Attributes:
        id: the ``<ID>`` of ``<ID>_input.png``.
        image: path of ``<ID>_input.png``.
        alpha: path of ``<ID>_alpha.png``.
    """

    id: str
    image: Path
    alpha: Path


def is_real_photo_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds ``<ID>_input.png`` files (the alphamatting.com layout)."""
    root = Path(folder)
    return root.is_dir() and any(re.fullmatch(r".+_input\.png", p.name, re.IGNORECASE) for p in root.iterdir())


def find_real_samples(folder: str | Path, ids: Sequence[str] | None = None) -> list[RealSample]:
    """List and check the photos of a folder.

    Args:
        folder: holds ``<ID>_input.png`` and ``<ID>_alpha.png``.
        ids: keep only these ids (in folder order); None keeps all.

    Raises:
        DataError: missing folder, no ``*_input.png``, a photo without its matte, an unknown id.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"photo folder {str(root)!r} does not exist or is not a folder")
    found = sorted(m.group(1) for p in root.iterdir() if (m := re.fullmatch(r"(.+)_input\.png", p.name, re.IGNORECASE)))
    if not found:
        raise DataError(f"{str(root)!r} holds no <ID>_input.png; expected <ID>_input.png and <ID>_alpha.png per photo")
    if ids is not None:
        unknown = [i for i in ids if i not in found]
        if unknown:
            raise DataError(f"--ids names {', '.join(unknown)}, not in {str(root)!r} (it holds {', '.join(found)})")
        found = [i for i in found if i in set(ids)]
    samples = []
    for i in found:
        alpha = root / f"{i}_alpha.png"
        if not alpha.is_file():
            raise DataError(f"{str(root)!r}: {i}_input.png has no ground-truth matte {i}_alpha.png")
        samples.append(RealSample(i, root / f"{i}_input.png", alpha))
    return samples


def deepest_point(mask: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of the mask pixel farthest from every non-mask pixel and the image border.

    Raises:
        DataError: empty mask.
    """
    import cv2

    if not mask.any():
        raise DataError("the ground-truth matte has no pixel with α > 0.5; no prompt can be derived")
    padded = np.pad(mask.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def padded_box(mask: np.ndarray, pad: float = BOX_PAD) -> list[float]:
    """The box ``[x0, y0, x1, y1]`` (``x1, y1`` exclusive) of ``mask``, padded by ``pad`` × long side, clipped.

    Raises:
        DataError: empty mask.
    """
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise DataError("the ground-truth matte has no pixel with α > 0.5; no prompt can be derived")
    h, w = mask.shape
    p = pad * max(h, w)
    return [max(0.0, xs.min() - p), max(0.0, ys.min() - p), min(float(w), xs.max() + 1 + p), min(float(h), ys.max() + 1 + p)]


def derive_prompt(gt: np.ndarray, kind: str) -> Prompt:
    """The user's prompt of ``kind`` (one of :data:`PROMPT_KINDS`) from an ``H×W`` GT matte."""
    if kind not in PROMPT_KINDS:
        raise DataError(f"unknown prompt kind {kind!r}; choose one of {', '.join(PROMPT_KINDS)}")
    mask = gt > OBJECT_ALPHA
    if kind == "gt-mask":
        if not mask.any():
            raise DataError("the ground-truth matte has no pixel with α > 0.5; no prompt can be derived")
        return Prompt(mask=mask)
    return Prompt(boxes=[padded_box(mask)] if "box" in kind else None,
                  points=[list(deepest_point(mask))] if "point" in kind else None)


def score_alpha(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """``sad``, ``mse_e3``, ``grad`` (whole image) and ``iou`` of a predicted ``H×W`` matte."""
    out = M.alpha_metrics(np.clip(pred, 0.0, 1.0), gt)
    out["iou"] = M.soft_iou(np.clip(pred, 0.0, 1.0), gt)
    return out


def evaluate_real_sample(predict: Callable[[np.ndarray, Prompt], np.ndarray], sample: RealSample, kind: str = "box",
                         on_result: Callable[[RealSample, dict], None] | None = None) -> dict[str, Any]:
    """Predict one matte from the derived prompt and score it.

    Args:
        predict: ``(image H×W×3 float, prompt) → alpha H×W`` (or anything with ``.alpha`` and
            optionally ``.timings``, such as a pipeline's result).
        sample: the photo.
        kind: prompt kind.
        on_result: optional ``callback(sample, {"image", "gt", "pred"})``.

    Returns:
        ``id``, the metrics of :data:`METRIC_KEYS`, ``size`` ``[w, h]`` and ``prompt``.
    """
    image = load_image(sample.image)
    gt = np.rint(load_mask(sample.alpha).astype(np.float64) * 255.0) / 255.0
    if gt.shape != image.shape[:2]:
        raise DataError(f"{sample.id}: image {image.shape[:2]} and matte {gt.shape} differ in size")
    prompt = derive_prompt(gt, kind)
    t0 = time.perf_counter()
    out = predict(image, prompt)
    seconds = time.perf_counter() - t0
    timings = dict(getattr(out, "timings", {}) or {})
    pred = np.asarray(getattr(out, "alpha", out), np.float64)
    if pred.shape != gt.shape:
        raise DataError(f"{sample.id}: the prediction is {pred.shape}, expected {gt.shape}")
    rec: dict[str, Any] = {"id": sample.id, **score_alpha(pred, gt), "seconds": seconds, "rss_mb": peak_rss_mb(),
                           "size": [int(gt.shape[1]), int(gt.shape[0])], "prompt": _prompt_dict(prompt)}
    if timings:
        rec["timings"] = timings
    if on_result is not None:
        on_result(sample, {"image": image, "gt": gt, "pred": pred})
    return rec


def _prompt_dict(prompt: Prompt) -> dict[str, Any]:
    if prompt.mask is not None:
        return {"mask": "GT α > 0.5"}
    d: dict[str, Any] = {}
    if prompt.boxes is not None:
        d["boxes"] = np.round(prompt.boxes, 1).tolist()
    if prompt.points is not None:
        d["points"] = prompt.points.tolist()
    return d


def evaluate_real(predict: Callable[[np.ndarray, Prompt], np.ndarray], samples: Sequence[RealSample], kind: str = "box",
                  progress: EtaProgress | None = None,
                  on_result: Callable[[RealSample, dict], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate every photo; a failing one is recorded with its ``error`` and the run goes on."""
    return run_items(samples, lambda s: evaluate_real_sample(predict, s, kind, on_result), lambda s: s.id, progress,
                     lambda r: f"ok {r['seconds']:.1f} s, SAD {r['sad']:.2f}, IoU {r['iou']:.3f}")


def pipeline_predictor(pipe: Any) -> Callable[[np.ndarray, Prompt], np.ndarray]:
    """``(image, prompt) → result`` of a pipeline (the whole decomposition runs and is timed, per stage too)."""
    return lambda image, prompt: pipe(image, prompt)


def peer_predictor() -> Callable[[np.ndarray, Prompt], np.ndarray]:
    """``(image, prompt) → alpha`` of the plain chain (:func:`layerkit.evaluation.peer.plain_chain`)."""
    from layerkit.evaluation.peer import plain_chain

    return lambda image, prompt: plain_chain(image, prompt).alpha


def real_thumbs(arrays: dict[str, np.ndarray], height: int = 128) -> dict[str, str]:
    """Report pictures of one photo: input, GT α, predicted α, ``|Δα|``."""
    from layerkit.evaluation.visuals import error_map, thumbnail

    pics = {"input": arrays["image"], "GT α": arrays["gt"], "pred α": arrays["pred"],
            "|Δα|": error_map(arrays["pred"], arrays["gt"])}
    return {k: thumbnail(v, height) for k, v in pics.items()}


def run_real(predict: Callable[[np.ndarray, Prompt], np.ndarray], name: str, samples: Sequence[RealSample],
             kind: str = "box", visuals: bool = False, quiet: bool = False, info: dict[str, Any] | None = None) -> Any:
    """Evaluate one predictor on the photos and collect a :class:`~layerkit.evaluation.report.Run`.

    The run's ``mean`` also holds ``min_iou`` (the worst photo's soft-IoU) and ``rss_mb`` is the peak.
    The predictor first runs once on a small synthetic picture (:func:`warm_up`), so one-off costs
    (imports, numba compilation in pymatting) are not billed to the first photo.
    """
    from layerkit.evaluation.report import Run
    from layerkit.evaluation.runner import mean_timings, summarise

    thumbs: dict[str, dict[str, str]] = {}

    def keep(sample: RealSample, arrays: dict) -> None:
        thumbs[sample.id] = real_thumbs(arrays)

    warm_up(predict)
    t0 = time.perf_counter()
    records = evaluate_real(predict, samples, kind, EtaProgress(len(samples), name, enabled=not quiet),
                            keep if visuals else None)
    mean = summarise(records, METRIC_KEYS)
    ok = [r for r in records if "error" not in r]
    mean["rss_mb"] = max([r["rss_mb"] for r in ok], default=float("nan"))
    mean["min_iou"] = min([r["iou"] for r in ok], default=float("nan"))
    run_info = dict(info or {})
    run_info.update({"wall seconds": round(time.perf_counter() - t0, 2), "peak RSS MiB": round(peak_rss_mb(), 1)})
    return Run(name, records, mean, mean_timings(records), thumbs, run_info)


def warm_up(predict: Callable[[np.ndarray, Prompt], np.ndarray]) -> None:
    """Run ``predict`` once on a 96×128 synthetic picture (a disc on a gradient) with a box prompt; errors are ignored."""
    yy, xx = np.mgrid[:96, :128].astype(np.float32)
    disc = ((xx - 64) ** 2 + (yy - 48) ** 2 < 30 ** 2)[..., None]
    image = np.where(disc, np.float32([0.9, 0.3, 0.2]), np.dstack([xx / 128, yy / 96, 0.5 + 0 * xx]))
    try:
        predict(image.astype(np.float32), Prompt(boxes=[[24, 8, 104, 88]]))
    except Exception:  # noqa: BLE001 - a warm-up failure shows again, with its message, on the first photo
        pass


SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (("run", "run"), ("n", "ok"), *((k, h) for k, h, _ in METRICS[:4]),
                                                ("min_iou", "worst IoU"), ("sad_vs_peer", "SAD ÷ peer"),
                                                *((k, h) for k, h, _ in METRICS[4:]))


def summary_rows(runs: Sequence[Any], peer: Any | None) -> list[dict[str, Any]]:
    """One row per run (means, worst IoU, SAD as a multiple of the peer's on the same photos)."""
    rows = []
    for r in runs:
        row = dict(r.mean, run=r.name, n=f"{sum('error' not in x for x in r.records)}/{len(r.records)}")
        if peer is not None:
            row["sad_vs_peer"] = sad_ratio(r, peer)
        rows.append(row)
    return rows


def sad_ratio(run: Any, peer: Any) -> float:
    """Mean SAD of ``run`` over mean SAD of ``peer``, on the photos both scored."""
    a = {x["id"]: x["sad"] for x in run.records if "error" not in x}
    b = {x["id"]: x["sad"] for x in peer.records if "error" not in x}
    ids = sorted(set(a) & set(b))
    den = sum(b[i] for i in ids)
    return float(sum(a[i] for i in ids) / den) if ids and den > 0 else float("nan")


def real_outputs(runs: Sequence[Any], peer: Any | None, meta: dict[str, Any], html: bool = False,
                 title: str = "layerkit eval (real photos)") -> dict[str, str | bytes]:
    """``results.json``, ``table.md`` (summary, then one per-photo table per run) and optionally ``report.html``."""
    from layerkit.evaluation.bench import run_doc
    from layerkit.evaluation.report import render_html, report_plots
    from layerkit.evaluation.runner import dump_json, environment, markdown_table

    env = environment()
    every = [*runs, *([peer] if peer is not None else [])]
    summary = summary_rows(every, peer)
    doc = {**meta, "summary": summary, "runs": [run_doc(r) for r in every], "env": env}
    md = [f"# {title}\n", "".join(f"- **{k}**: {v}\n" for k, v in {**meta, "layerkit commit": env["git"],
                                                                       "date": env["date"]}.items()),
          "\n## Summary (means over the photos)\n", markdown_table(summary, SUMMARY_COLUMNS)]
    for r in every:
        rows = [dict(x, error=x.get("error", "")) for x in r.records] + [dict(r.mean, id="**mean**", error="")]
        md += [f"\n## {r.name}\n", markdown_table(rows, TABLE_COLUMNS)]
    files: dict[str, str | bytes] = {"results.json": dump_json(doc), "table.md": "\n".join(md)}
    if html:
        plots = report_plots(every, METRICS)
        files.update(plots)
        files["report.html"] = render_html(title, every, METRICS, "sad", {**meta, "layerkit commit": env["git"]}, plots=plots)
    return files
