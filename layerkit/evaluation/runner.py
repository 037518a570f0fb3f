"""Plumbing shared by the evaluation commands: progress with ETA, memory, aggregation, output.

Every evaluation writes one folder (``results.json``, ``table.md`` and optionally
``report.html``) atomically: the folder appears complete under its final name or not at all.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerkit.io.atomic import atomic_path
from layerkit.progress import ItemBar


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``getrusage`` max RSS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0)


#: progress with ETA over the items of a run: the one tqdm bar of :mod:`layerkit.progress`
EtaProgress = ItemBar


def run_items(items: Sequence[Any], work: Callable[[Any], dict[str, Any]], name: Callable[[Any], str],
              progress: EtaProgress | None = None,
              describe: Callable[[dict[str, Any]], str] | None = None) -> list[dict[str, Any]]:
    """Run ``work`` on every item; a failing item is recorded with its error and the run goes on.

    Args:
        items: the samples.
        work: item → record (a dict of metrics and metadata).
        name: item → its id, used in progress lines and failure records.
        progress: optional :class:`EtaProgress`.
        describe: record → short text for its progress line (default "ok").

    Returns:
        One record per item, in order; a failed one is ``{"id", "error"}``.
    """
    records = []
    for item in items:
        failed = False
        try:
            rec = work(item)
            status = describe(rec) if describe is not None else "ok"
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # any failure of one sample is reported, the run goes on
            msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
            rec = {"id": name(item), "error": msg}
            status, failed = f"FAILED ({msg})", True
        records.append(rec)
        if progress is not None:
            progress.update(name(item), status, failed)
    return records


def finite_mean(values: Iterable[float]) -> float:
    """Mean of the finite values (NaN if none)."""
    v = [float(x) for x in values if x is not None and isinstance(x, (int, float)) and math.isfinite(float(x))]
    return float(np.mean(v)) if v else float("nan")


def summarise(records: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over the records that succeeded (non-finite values skipped)."""
    ok = [r for r in records if "error" not in r]
    return {k: finite_mean(r.get(k) for r in ok) for k in keys}


def mean_timings(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean seconds per pipeline stage over the successful records' ``timings`` dicts."""
    stages: list[str] = []
    for r in records:
        for s in r.get("timings", {}) or {}:
            if s not in stages:
                stages.append(s)
    ok = [r for r in records if "error" not in r and r.get("timings")]
    return {s: finite_mean(r["timings"].get(s, 0.0) for r in ok) for s in stages}


def jsonable(x: Any) -> Any:
    """Recursively convert numpy values to Python ones and NaN/inf to ``None`` (strict JSON)."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else None
    return x


def environment() -> dict[str, Any]:
    """Where the numbers were measured: Python, platform, CPU count, library versions."""
    from layerkit import __version__

    return {"layerkit": __version__, "git": git_revision(), "python": platform.python_version(),
            "platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "numpy": np.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def git_revision() -> str | None:
    """Commit of the layerkit checkout in use (``+dirty`` with uncommitted changes), None outside git."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=10)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def fmt(value: Any, digits: int = 3) -> str:
    """A metric value for a table cell ("–" for missing or non-finite; ``digits`` decimals, or
    significant digits below 0.1)."""
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            return "–"
        if f != 0 and abs(f) < 0.1:
            return f"{f:.{digits}g}"  # small values keep their significant digits (0.00782, not 0.008)
        return f"{f:.{digits}f}" if abs(f) < 1e5 else f"{f:.3g}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], digits: int = 3) -> str:
    """A GitHub-markdown table.

    Args:
        rows: one mapping per row.
        columns: ``(key, header)`` pairs, in order.
        digits: decimals of float cells.
    """
    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    body = ["| " + " | ".join(fmt(r.get(k), digits).replace("|", "\\|") for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def write_outputs(path: str | os.PathLike, files: Mapping[str, str | bytes], overwrite: bool = False) -> Path:
    """Write a folder of text/binary files atomically.

    Args:
        path: the output folder.
        files: relative file name → content (``str`` is written as UTF-8).
        overwrite: replace an existing folder.

    Returns:
        The folder path.
    """
    with atomic_path(path, overwrite=overwrite, directory=True) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        for rel, content in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8")
    return Path(path)


def dump_json(doc: Any) -> str:
    """Strict JSON text (NaN/inf written as null), indented."""
    return json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n"
