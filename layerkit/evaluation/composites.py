"""Evaluation on a folder of synthetic composites with exact ground truth.

The folder is what ``make_composites.py`` writes: one sub-folder per sample with

* ``composite.png`` (RGB), ``gt_alpha.png`` (L), ``gt_fg.png`` (RGBA, straight alpha),
  ``gt_bg.png`` (RGB, the complete background);
* ``box.json`` with ``"box_xyxy"`` (``x1, y1`` exclusive) and ``"point_xy"``.

Per sample the pipeline runs once on ``composite.png`` with a box and/or point prompt, and the
prediction is scored against the ground truth (:data:`METRICS`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from layerkit.errors import DataError
from layerkit.evaluation import metrics as M
from layerkit.evaluation.runner import EtaProgress, peak_rss_mb, run_items
from layerkit.io.image import load_mask

#: files every sample folder must hold (besides its JSON with the prompt)
REQUIRED_FILES = ("composite.png", "gt_alpha.png", "gt_fg.png", "gt_bg.png")
#: prompt kinds: the JSON's box, its point, both in one prompt, or the ground-truth mask
#: (``gt_alpha > 0.5`` as a mask prompt: the matting stages given a perfect segmentation)
PROMPT_KINDS = ("box", "point", "box+point", "gt-mask")
#: GT alpha above which a pixel belongs to the ``gt-mask`` prompt
GT_MASK_ALPHA = 0.5
#: ``(key, header, higher_is_better)`` of every per-sample metric, in table order
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("sad", "α SAD/1e3", False),
    ("mse_e3", "α MSE×1e3", False),
    ("grad", "α grad/1e3", False),
    ("iou", "α soft-IoU", True),
    ("fg_l1", "F L1 (α-weighted)", False),
    ("bg_psnr_occ", "B PSNR occluded", True),
    ("bg_psnr", "B PSNR", True),
    ("recomp_psnr", "recomp PSNR", True),
    ("seconds", "s/sample", False),
    ("rss_mb", "peak RSS MiB", False),
)
METRIC_KEYS = tuple(k for k, _, _ in METRICS)
#: GT alpha above which a background pixel counts as occluded
OCCLUDED_ALPHA = 0.01


@dataclass(frozen=True)
class CompositeSample:
    """One sample folder.

    Attributes:
        id: folder name (``"0007"``).
        path: the folder.
        meta: the parsed prompt JSON (``box_xyxy``, ``point_xy``, ``label``…).
    """

    id: str
    path: Path
    meta: dict

    def prompt(self, kind: str) -> Any:
        """The :class:`~layerkit.types.Prompt` of ``kind`` (one of :data:`PROMPT_KINDS`).

        ``gt-mask`` is the ground-truth mask (``gt_alpha > 0.5``) as a mask prompt: with a
        segmenter that keeps a mask prompt as given (``refine_mask: false``), what the rest of
        the pipeline reaches with a perfect segmentation.
        """
        from layerkit.types import Prompt

        if kind == "gt-mask":
            return Prompt(mask=load_mask(self.path / "gt_alpha.png") > GT_MASK_ALPHA)
        box = [self.meta["box_xyxy"]] if "box" in kind else None
        point = [self.meta["point_xy"]] if "point" in kind else None
        return Prompt(boxes=box, points=point)


def find_samples(data_dir: str | Path, meta_file: str = "box.json", prompt: str = "box") -> list[CompositeSample]:
    """List and check the samples of a composite folder, before any long work.

    A sample is a sub-folder holding ``composite.png`` or ``meta_file``; every sample must hold
    all of :data:`REQUIRED_FILES` and a JSON ``meta_file`` with the keys the prompt needs.

    Args:
        data_dir: the folder written by ``make_composites.py``.
        meta_file: per-sample JSON file name with the prompt (``--box-from``).
        prompt: one of :data:`PROMPT_KINDS`.

    Returns:
        The samples sorted by folder name.

    Raises:
        DataError: missing folder, no sample, a sample missing a file or a prompt key.
    """
    if prompt not in PROMPT_KINDS:
        raise DataError(f"unknown prompt kind {prompt!r}; choose one of {', '.join(PROMPT_KINDS)}")
    root = Path(data_dir)
    if not root.exists():
        raise DataError(f"data folder {str(root)!r} does not exist; make one with make_composites.py (see docs/benchmarks.md)")
    if not root.is_dir():
        raise DataError(f"data path {str(root)!r} is not a folder")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and ((d / "composite.png").exists() or (d / meta_file).exists()))
    if not dirs:
        raise DataError(f"{str(root)!r} holds no sample folder (sub-folders with composite.png and {meta_file}); "
                        "is it the output of make_composites.py?")
    keys = [k for k, part in (("box_xyxy", "box"), ("point_xy", "point")) if part in prompt]
    samples = []
    for d in dirs:
        missing = [f for f in (*REQUIRED_FILES, meta_file) if not (d / f).is_file()]
        if missing:
            raise DataError(f"sample {str(d)!r} is missing {', '.join(missing)}")
        meta = _read_json(d / meta_file)
        for k in keys:
            v = meta.get(k)
            if not isinstance(v, list) or len(v) != (4 if k == "box_xyxy" else 2):
                raise DataError(f"{str(d / meta_file)!r} has no valid {k!r} (needed by --prompt {prompt}); "
                                f"expected {'[x0, y0, x1, y1]' if k == 'box_xyxy' else '[x, y]'}")
        samples.append(CompositeSample(d.name, d, meta))
    return samples


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {str(path)!r}: {e}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{str(path)!r} must hold a JSON object")
    return doc


def read_rgba(path: str | Path) -> np.ndarray:
    """An image file as ``H×W×4`` float32 straight RGBA in ``[0, 1]`` (no flattening)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGBA"), np.float32) / 255.0
    except OSError as e:
        raise DataError(f"cannot read {str(path)!r}: {e}") from None


def load_ground_truth(sample: CompositeSample) -> dict[str, np.ndarray]:
    """``image`` (``H×W×3``), ``alpha`` (``H×W``), ``fg`` (``H×W×3``), ``bg`` (``H×W×3``), float32 ``[0, 1]``.

    Raises:
        DataError: unreadable file or sizes that do not match.
    """
    image = read_rgba(sample.path / "composite.png")[..., :3]
    alpha = load_mask(sample.path / "gt_alpha.png")
    fg = read_rgba(sample.path / "gt_fg.png")[..., :3]
    bg = read_rgba(sample.path / "gt_bg.png")[..., :3]
    sizes = {a.shape[:2] for a in (image, alpha, fg, bg)}
    if len(sizes) != 1:
        raise DataError(f"sample {str(sample.path)!r} has files of different sizes {sorted(sizes)}")
    return {"image": image, "alpha": alpha, "fg": fg, "bg": bg}


def write_sample(folder: str | Path, image: np.ndarray, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray,
                 meta: dict, meta_file: str = "box.json") -> Path:
    """Write one sample in the composite-folder format (e.g. to evaluate your own ground truth).

    Args:
        folder: the sample folder to create (its parent is the data folder).
        image: ``H×W×3`` composite; alpha: ``H×W``; fg: ``H×W×3`` straight colour; bg: ``H×W×3``;
            all float in ``[0, 1]`` (stored as 8-bit PNGs, FG colour zeroed where α rounds to 0).
        meta: JSON content; needs ``box_xyxy`` and/or ``point_xy`` for the prompt.
        meta_file: JSON file name.

    Returns:
        The folder.
    """
    from layerkit.io.image import to_uint8

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    a8, f8 = to_uint8(alpha), to_uint8(fg)
    f8[a8 == 0] = 0
    Image.fromarray(to_uint8(image), "RGB").save(d / "composite.png")
    Image.fromarray(a8, "L").save(d / "gt_alpha.png")
    Image.fromarray(np.dstack([f8, a8]), "RGBA").save(d / "gt_fg.png")
    Image.fromarray(to_uint8(bg), "RGB").save(d / "gt_bg.png")
    (d / meta_file).write_text(json.dumps(meta, indent=1))
    return d


def score_decomposition(gt: dict[str, np.ndarray], alpha: np.ndarray, foreground: np.ndarray,
                        background: np.ndarray, recomposed: np.ndarray) -> dict[str, float]:
    """Every quality metric of one prediction against its ground truth.

    Args:
        gt: :func:`load_ground_truth` output.
        alpha: ``H×W`` predicted alpha.
        foreground: ``H×W×3`` (or ``×4``) predicted straight foreground colour.
        background: ``H×W×3`` predicted complete background.
        recomposed: ``H×W×3`` the predicted stack composited (compared with the input).

    Returns:
        ``sad``, ``mse_e3``, ``grad``, ``iou``, ``fg_l1``, ``bg_psnr_occ``, ``bg_psnr``, ``recomp_psnr``.
    """
    out = M.alpha_metrics(alpha, gt["alpha"])
    out["iou"] = M.soft_iou(alpha, gt["alpha"])
    out["fg_l1"] = M.weighted_l1(foreground[..., :3], gt["fg"], gt["alpha"])
    out["bg_psnr_occ"] = M.psnr_db(background, gt["bg"], gt["alpha"] > OCCLUDED_ALPHA)
    out["bg_psnr"] = M.psnr_db(background, gt["bg"])
    out["recomp_psnr"] = M.psnr_db(recomposed[..., :3], gt["image"])
    return out


def evaluate_sample(pipe: Any, sample: CompositeSample, prompt_kind: str = "box",
                    on_result: Callable[[CompositeSample, dict, Any], None] | None = None) -> dict[str, Any]:
    """Run ``pipe`` on one sample and score it.

    Args:
        pipe: a :class:`~layerkit.pipelines.decompose.Pipeline` (anything with
            ``__call__(image, prompt) -> DecompositionResult``).
        sample: the sample.
        prompt_kind: one of :data:`PROMPT_KINDS`.
        on_result: optional ``callback(sample, gt, result)``, e.g. to make report thumbnails.

    Returns:
        A record: ``id``, ``label``, the metrics of :data:`METRIC_KEYS`, ``timings`` (seconds per
        stage), ``size`` (``[w, h]``) and ``prompt``.
    """
    gt = load_ground_truth(sample)
    prompt = sample.prompt(prompt_kind)
    t0 = time.perf_counter()
    res = pipe(str(sample.path / "composite.png"), prompt)
    seconds = time.perf_counter() - t0
    if res.alpha.shape != gt["alpha"].shape:
        raise DataError(f"prediction is {res.alpha.shape} but the ground truth is {gt['alpha'].shape}")
    rec: dict[str, Any] = {"id": sample.id, "label": sample.meta.get("label", "")}
    rec.update(score_decomposition(gt, res.alpha, res.foreground, res.background, res.layers.composite()))
    rec.update({"seconds": seconds, "rss_mb": peak_rss_mb(), "timings": dict(res.timings),
                "size": [int(gt["alpha"].shape[1]), int(gt["alpha"].shape[0])], "prompt": prompt.to_dict()})
    if on_result is not None:
        on_result(sample, gt, res)
    return rec


def evaluate_composites(pipe: Any, samples: Sequence[CompositeSample], prompt_kind: str = "box",
                        progress: EtaProgress | None = None,
                        on_result: Callable[[CompositeSample, dict, Any], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate every sample; a failing sample is recorded with its ``error`` and the run goes on."""
    return run_items(samples, lambda s: evaluate_sample(pipe, s, prompt_kind, on_result), lambda s: s.id, progress,
                     lambda r: f"ok {r['seconds']:.1f} s, SAD {r['sad']:.2f}, IoU {r['iou']:.3f}")


def table_rows(records: Sequence[dict[str, Any]], mean: dict[str, float], label: str = "**mean**") -> list[dict[str, Any]]:
    """Per-sample table rows plus a final mean row (failed samples show their error)."""
    rows = [dict(r, error=r.get("error", "")) for r in records]
    rows.append(dict(mean, id=label, label=f"{sum('error' not in r for r in records)}/{len(records)} ok", error=""))
    return rows


TABLE_COLUMNS: tuple[tuple[str, str], ...] = (("id", "sample"), ("label", "label"),
                                              *((k, h) for k, h, _ in METRICS), ("error", "error"))
