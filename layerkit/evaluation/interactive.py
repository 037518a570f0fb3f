"""The interactive-segmentation protocol over a data folder: NoC@85/90 and IoU after k clicks.

``layerkit bench --interactive`` and ``benchmarks/interactive.py`` both run this. For every
sample the simulated user of :mod:`layerkit.app.noc` clicks at the interior of the largest error
region, up to ``max_clicks`` clicks, against each method:

* one :class:`~layerkit.app.interactive.ClickRefiner` per config (its segmenter gives the first
  mask; every later click refines the current mask — what ``layerkit app`` does);
* the peer, plain OpenCV GrabCut from the same clicks, run afresh per click
  (:class:`~layerkit.app.interactive.GrabCutPeer`).

IoU is that of the returned mask against GT α > 0.5. A session stops once it has reached IoU
0.90 after at least 5 clicks (later IoUs count as the last one). Folders: composites
(``make_composites.py`` / ``make-dataset`` output: ``NNNN/composite.png`` + ``gt_alpha.png``) or
real photos (``<ID>_input.png`` + ``<ID>_alpha.png``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerkit.app.noc import ClickSegmenter, Trace, simulate, summarise
from layerkit.errors import DataError

#: the peer's name in results
PEER = "plain GrabCut"
#: the columns of the report, in order
METRICS = ("NoC@85", "NoC@90", "IoU@1", "IoU@3", "IoU@5", "fail@90")


@dataclass(frozen=True)
class ClickSample:
    """One image with its ground-truth matte (``id``, image path, alpha path)."""

    id: str
    image: Path
    alpha: Path


def find_click_samples(data: str | Path, limit: int | None = None, offset: int = 0,
                       ids: Sequence[str] | None = None) -> tuple[str, list[ClickSample]]:
    """The samples of a composite or real-photo folder.

    Args:
        data: the folder.
        limit: first ``limit`` samples only (after ``offset``).
        offset: skip the first ``offset`` samples.
        ids: keep only these sample ids (before ``offset``/``limit``).

    Returns:
        ``(kind, samples)`` with ``kind`` ``"composites"`` or ``"real_photos"``.

    Raises:
        DataError: no such folder, no samples, a bad limit, an unknown id.
    """
    from layerkit.evaluation.realphoto import find_real_samples, is_real_photo_folder

    root = Path(data)
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist or is not a folder")
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be at least 1, got {limit}")
    if offset < 0:
        raise DataError(f"--offset must be at least 0, got {offset}")
    if is_real_photo_folder(root):
        kind = "real_photos"
        rows = [ClickSample(s.id, s.image, s.alpha) for s in find_real_samples(root, ids)]
    else:
        kind = "composites"
        rows = [ClickSample(d.name, d / "composite.png", d / "gt_alpha.png") for d in sorted(root.iterdir())
                if (d / "composite.png").is_file() and (d / "gt_alpha.png").is_file()]
        if ids is not None:
            unknown = sorted(set(ids) - {r.id for r in rows})
            if unknown:
                raise DataError(f"unknown sample id(s) {', '.join(unknown)} in {str(root)!r}")
            rows = [r for r in rows if r.id in set(ids)]
    if not rows:
        raise DataError(f"no samples in {str(root)!r}: expected NNNN/composite.png + NNNN/gt_alpha.png "
                        "sub-folders (make_composites.py) or <ID>_input.png + <ID>_alpha.png photos")
    rows = rows[offset:]
    return kind, rows[:limit] if limit is not None else rows


def run_protocol(methods: Mapping[str, ClickSegmenter], samples: Sequence[ClickSample], max_clicks: int = 20,
                 quiet: bool = False) -> dict[str, Any]:
    """Simulate the user on every sample against every method.

    Args:
        methods: name → click segmenter (see :data:`layerkit.app.noc.ClickSegmenter`).
        samples: from :func:`find_click_samples`.
        max_clicks: clicks per session at most.
        quiet: no progress bar.

    Returns:
        ``{"n": ..., "max_clicks": ..., "means": {method: metrics}, "samples": [per-sample rows]}``;
        metrics are :data:`METRICS` plus ``seconds_per_click`` (wall time of the method's call).
    """
    from layerkit.io.image import load_image, load_mask
    from layerkit.progress import ItemBar

    if max_clicks < 1:
        raise DataError(f"--max-clicks must be at least 1, got {max_clicks}")
    traces: dict[str, list[Trace]] = {m: [] for m in methods}
    rows = []
    t0 = time.perf_counter()
    with ItemBar(len(samples), "interactive", enabled=not quiet, unit="image") as bar:
        for s in samples:
            image = load_image(s.image)
            gt = load_mask(s.alpha) >= 0.5
            row: dict[str, Any] = {"id": s.id}
            for name, segment in methods.items():
                tr = simulate(segment, image, gt, max_clicks=max_clicks, stop_at=0.90, min_clicks=5)
                traces[name].append(tr)
                row[name] = {"ious": [round(v, 4) for v in tr.ious], "noc85": tr.noc(0.85), "noc90": tr.noc(0.90),
                             "seconds_per_click": round(float(np.mean(tr.seconds)), 3) if tr.seconds else None}
            rows.append(row)
            bar.update(s.id, " ".join(f"{m} {row[m]['noc90']}" for m in methods))
    means = {m: summarise(tr) | {"seconds_per_click": float(np.mean([x for t in tr for x in t.seconds] or [np.nan]))}
             for m, tr in traces.items()}
    return {"n": len(samples), "max_clicks": max_clicks, "seconds": round(time.perf_counter() - t0, 2),
            "means": means, "samples": rows}


def ratio_to_peer(result: Mapping[str, Any], peer: str = PEER, metric: str = "NoC@90") -> dict[str, float]:
    """``metric`` of every method divided by the peer's (lower is better for NoC)."""
    means = result["means"]
    if peer not in means or not means[peer][metric]:
        return {}
    return {m: float(v[metric] / means[peer][metric]) for m, v in means.items() if m != peer}


def table_markdown(result: Mapping[str, Any], title: str) -> str:
    """The report table (one row per method) as Markdown."""
    lines = [f"## {title} ({result['n']} images, ≤ {result['max_clicks']} clicks)", "",
             "| method | " + " | ".join(METRICS) + " | NoC@90 / peer | s/click |", "|---" * (len(METRICS) + 3) + "|"]
    ratios = ratio_to_peer(result)
    for m, v in result["means"].items():
        r = f"{ratios[m]:.2f}×" if m in ratios else "—"
        lines.append(f"| {m} | " + " | ".join(f"{v[k]:.3f}" for k in METRICS) + f" | {r} | {v['seconds_per_click']:.3f} |")
    lines += ["", "| sample | " + " | ".join(f"{m} NoC@90" for m in result["means"]) + " |",
              "|---" * (len(result["means"]) + 1) + "|"]
    for row in result["samples"]:
        lines.append(f"| {row['id']} | " + " | ".join(str(row[m]["noc90"]) for m in result["means"]) + " |")
    return "\n".join(lines) + "\n"
