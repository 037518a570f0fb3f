"""Small pictures for reports: thumbnails as data URIs, checkerboards, error maps, plots.

Everything renders off-screen (matplotlib's Agg canvas, never ``pyplot``), so reports can be
made on machines without a display and without changing the user's matplotlib backend.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from layerkit.io.image import to_uint8

#: thumbnail columns of a decomposition row, in order
THUMB_NAMES = ("input", "GT α", "pred α", "F over checker", "B", "|Δα|")


def data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI of some bytes (base64)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail(arr: np.ndarray, height: int = 128, quality: int = 85) -> str:
    """An ``H×W`` or ``H×W×3`` float image in ``[0, 1]`` as a JPEG data URI, ``height`` px tall."""
    im = Image.fromarray(to_uint8(arr))
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    h, w = arr.shape[:2]
    if h > height:
        im = im.resize((max(1, round(w * height / h)), height), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return data_uri(buf.getvalue(), "image/jpeg")


def checkerboard(h: int, w: int, cell: int = 8, light: float = 0.85, dark: float = 0.6) -> np.ndarray:
    """``H×W×3`` grey checkerboard, the usual backdrop that shows transparency."""
    yy, xx = np.mgrid[:h, :w]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, light, dark).astype(np.float32)
    return np.repeat(board[..., None], 3, axis=2)


def over_checkerboard(rgba: np.ndarray, cell: int = 8) -> np.ndarray:
    """Straight ``H×W×4`` RGBA composited over :func:`checkerboard` → ``H×W×3``."""
    a = rgba[..., 3:4]
    return (a * rgba[..., :3] + (1.0 - a) * checkerboard(*rgba.shape[:2], cell=cell)).astype(np.float32)


def error_map(pred: np.ndarray, gt: np.ndarray, vmax: float = 1.0, cmap: str = "inferno") -> np.ndarray:
    """``|pred − gt|`` of two ``H×W`` maps as an ``H×W×3`` colour image (0 black, ``vmax`` bright)."""
    from matplotlib import colormaps

    err = np.clip(np.abs(np.asarray(pred, np.float32) - np.asarray(gt, np.float32)) / vmax, 0.0, 1.0)
    return colormaps[cmap](err)[..., :3].astype(np.float32)


def decomposition_thumbs(image: np.ndarray, gt_alpha: np.ndarray, alpha: np.ndarray, foreground: np.ndarray,
                         background: np.ndarray, height: int = 128) -> dict[str, str]:
    """The six pictures of one report row, as JPEG data URIs keyed by :data:`THUMB_NAMES`.

    Args:
        image: ``H×W×3`` input.
        gt_alpha: ``H×W`` ground-truth alpha.
        alpha: ``H×W`` predicted alpha.
        foreground: ``H×W×4`` predicted straight RGBA object layer.
        background: ``H×W×3`` predicted background.
        height: thumbnail height in pixels.
    """
    pics = (image, gt_alpha, alpha, over_checkerboard(foreground), background, error_map(alpha, gt_alpha))
    return {name: thumbnail(p, height) for name, p in zip(THUMB_NAMES, pics)}


def _png(fig: object) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # type: ignore[arg-type]
    buf = io.BytesIO()
    canvas.print_png(buf)
    return buf.getvalue()


def distribution_plot(values: Mapping[str, Mapping[str, Sequence[float]]], headers: Mapping[str, str],
                      columns: int = 4) -> bytes:
    """Box plots (with the samples as dots) of each metric, one box per run.

    Args:
        values: run name → metric key → per-sample values (non-finite values are dropped).
        headers: metric key → axis title, in display order.
        columns: subplots per row.

    Returns:
        PNG bytes.
    """
    from matplotlib.figure import Figure

    keys = list(headers)
    runs = list(values)
    rows = max(1, math.ceil(len(keys) / columns))
    fig = Figure(figsize=(3.2 * min(columns, len(keys)), 2.8 * rows), dpi=100, layout="constrained")
    rng = np.random.default_rng(0)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, min(columns, len(keys)), i + 1)
        data = [np.asarray([v for v in values[r].get(key, []) if v is not None and np.isfinite(v)], float) for r in runs]
        ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=False)
        for j, d in enumerate(data):
            ax.plot(j + 1 + rng.uniform(-0.15, 0.15, d.size), d, "o", ms=2.5, alpha=0.6, color="C0")
        ax.set_xticks(range(1, len(runs) + 1), [_short(r) for r in runs], rotation=20 if len(runs) > 2 else 0, fontsize=8)
        ax.set_title(headers[key], fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def timing_plot(timings: Mapping[str, Mapping[str, float]]) -> bytes:
    """Stacked horizontal bars: mean seconds per pipeline stage, one bar per run.

    Args:
        timings: run name → stage → mean seconds.

    Returns:
        PNG bytes.
    """
    from matplotlib.figure import Figure

    runs = list(timings)
    stages: list[str] = []
    for r in runs:
        stages += [s for s in timings[r] if s not in stages]
    fig = Figure(figsize=(8, 0.6 * len(runs) + 1.4), dpi=100, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    left = np.zeros(len(runs))
    for k, stage in enumerate(stages):
        widths = np.array([timings[r].get(stage, 0.0) or 0.0 for r in runs], float)
        widths = np.where(np.isfinite(widths), widths, 0.0)
        ax.barh(range(len(runs)), widths, left=left, label=stage, color=f"C{k % 10}")
        left += widths
    ax.set_yticks(range(len(runs)), [_short(r) for r in runs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean seconds per sample")
    ax.legend(ncols=min(len(stages), 6) or 1, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(runs) < 3 else -0.12))
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else "…" + name[-(n - 1):]
