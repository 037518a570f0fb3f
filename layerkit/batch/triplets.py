"""Image-layer-prompt triplets from a ``layerkit batch`` output, quality-filtered (RefLayer's data engine).

``layerkit make-dataset --task reflayer --from-batch out/ -o triplets/`` reads ``out/index.jsonl``;
every object layer of every ``ok`` image is a candidate triplet (the input image, the complete RGBA
layer, the prompt that asked for it) and is kept only if it passes :class:`QualityFilter`:

* **recomposition** — the image's whole stack recomposes the input at ≥ ``min_psnr`` dB (a stack
  that does not reproduce its image has wrong layers somewhere);
* **alpha mass** — the layer's mean alpha lies in ``[min_mass, max_mass]`` (specks and layers that
  swallowed the picture are out), and ≥ ``min_visible`` of it is visible, not covered by the layers
  above (a mostly hidden layer makes an ambiguous prompt);
* **edge sanity** — the layer is opaque (α > 0.5) on ≤ ``max_border`` of the image's 1-pixel frame
  (background leaking in hugs the frame); its semi-transparent band (0.02 < α < 0.98) has a mean
  width (band area over alpha edge length, ``Σ|∇α|``) ≤ ``max_soft`` of the layer's size (the
  square root of its support area, α > 0.02) — a mushy matte has a band as wide as the object,
  hair a few percent; and the image gradient on its alpha edge (weighted by ``|∇α|``) is
  ≥ ``min_edge`` times the image's mean gradient (a true matte edge sits on an image edge).

Output (written atomically)::

    triplets/index.jsonl      one kept triplet per line: {"image": "ID/image.png", "layer": "ID/layer_01.png",
                              "prompt": {object record}, "source": ID, "stack_index": 1, "name": ..., "quality": {...}}
    triplets/rejected.jsonl   {"source", "stack_index", "name", "reasons": [...], "quality": {...}}
    triplets/filter.json      thresholds and counts (kept, rejected by reason)
    triplets/ID/image.png, ID/layer_NN.png

``prompt`` is an object record of ``layerkit layers --prompts``' schema: the prompt the batch run
was given, else (``--auto``) the automatic one it recorded, else the box and interior point of the
layer's visible part.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layerkit.errors import DataError


@dataclass
class QualityFilter:
    """Thresholds of a kept triplet (see the module docstring for what each measures)."""

    min_psnr: float = 30.0
    min_mass: float = 0.002
    max_mass: float = 0.6
    min_visible: float = 0.3
    max_border: float = 0.2
    max_soft: float = 0.35
    min_edge: float = 1.0

    def reasons(self, q: dict[str, float]) -> list[str]:
        """Names of the failed checks of a layer's measures ``q`` (empty: keep it)."""
        out = []
        if not q["psnr"] >= self.min_psnr:
            out.append("recomposition")
        if not self.min_mass <= q["mass"] <= self.max_mass:
            out.append("alpha_mass")
        if not q["visible"] >= self.min_visible:
            out.append("hidden")
        if q["border"] > self.max_border:
            out.append("border")
        if q["soft"] > self.max_soft:
            out.append("soft_matte")
        if not q["edge"] >= self.min_edge:
            out.append("edge")
        return out


def _gradient(image: np.ndarray) -> np.ndarray:
    """``H×W`` magnitude of the luminance gradient (central differences) of an ``H×W×3`` image."""
    gy, gx = np.gradient(image.mean(axis=2))
    return np.hypot(gx, gy)


def layer_quality(alpha: np.ndarray, above: np.ndarray, grad: np.ndarray, stack_psnr: float) -> dict[str, float]:
    """Measures of one layer.

    Args:
        alpha: ``H×W`` layer alpha in ``[0, 1]``.
        above: ``H×W`` coverage of the layers above it (``1 - Π(1 - α_k)``).
        grad: ``H×W`` image gradient magnitude (:func:`_gradient`).
        stack_psnr: recomposition PSNR (dB) of the whole stack.
    """
    mass = float(alpha.mean())
    visible = float((alpha * (1.0 - above)).sum() / max(alpha.sum(), 1e-8))
    frame = np.concatenate([alpha[0], alpha[-1], alpha[1:-1, 0], alpha[1:-1, -1]])
    support = float((alpha > 0.02).sum())
    ay, ax = np.gradient(alpha)
    edge_w = np.hypot(ax, ay)
    band = float(((alpha > 0.02) & (alpha < 0.98)).sum())
    soft = band / max(float(edge_w.sum()), 1e-8) / max(support, 1.0) ** 0.5 if band else 0.0
    edge = float((edge_w * grad).sum() / max(edge_w.sum(), 1e-8) / max(grad.mean(), 1e-8)) if edge_w.sum() > 0 else 0.0
    return {"psnr": round(float(stack_psnr), 2), "mass": round(mass, 5), "visible": round(visible, 4),
            "border": round(float((frame > 0.5).mean()), 4), "soft": round(soft, 4), "edge": round(edge, 3)}


def visible_prompt(alpha: np.ndarray, above: np.ndarray) -> dict[str, Any] | None:
    """Box and interior point (the most interior visible pixel) of a layer's visible part (α > 0.5)."""
    from scipy.ndimage import distance_transform_edt

    vis = (alpha * (1.0 - above)) > 0.5
    if not vis.any():
        return None
    ys, xs = np.nonzero(vis)
    d = distance_transform_edt(np.pad(vis, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(d)), d.shape)
    return {"box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1], "points": [[int(x), int(y)]],
            "labels": [1]}


def _prompts_by_layer(rec: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {o["layer"]: o["prompt"] for o in rec.get("objects", []) if o.get("status") == "layer" and o.get("prompt")}


def make_triplets(batch_dir: str | Path, out: str | Path, filt: QualityFilter | None = None, overwrite: bool = False,
                  progress: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Write the triplets of a batch output (see the module docstring); returns ``filter.json``'s content.

    Raises:
        DataError: ``batch_dir`` is not a batch output or has no finished image.
    """
    from layerkit.batch.index import read_records
    from layerkit.errors import InputImageError
    from layerkit.io.atomic import atomic_path, check_output
    from layerkit.io.image import load_image, to_pil
    from layerkit.ops.compositing import psnr
    from layerkit.types import LayerStack

    filt = filt or QualityFilter()
    batch_dir = Path(batch_dir)
    check_output(out, overwrite)
    if not (batch_dir / "batch.json").exists():
        raise DataError(f"{str(batch_dir)!r} is not a layerkit batch output (no batch.json); run 'layerkit batch' first")
    records = [r for _, r in sorted(read_records(batch_dir).items()) if r.get("status") == "ok"]
    if not records:
        raise DataError(f"{str(batch_dir)!r} has no finished image in its index; nothing to make triplets from")
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    with atomic_path(out, overwrite=overwrite, directory=True) as tmp:
        for rec in records:
            try:
                image = load_image(rec["image"], max_pixels=None)
                stack = LayerStack.load(batch_dir / rec["output"])
            except InputImageError as e:
                rejected.append({"source": rec["id"], "reasons": ["unreadable"], "error": str(e)})
                reasons["unreadable"] += 1
                continue
            stack_psnr = psnr(stack.composite(), image)
            grad = _gradient(image)
            given = _prompts_by_layer(rec)
            alphas = [layer.alpha for layer in stack]
            written = False
            for i in range(1, len(stack)):
                above = 1.0 - np.prod([1.0 - a for a in alphas[i + 1:]] or [np.ones_like(alphas[i])], axis=0)
                q = layer_quality(alphas[i], above, grad, stack_psnr)
                why = filt.reasons(q)
                meta = {"source": rec["id"], "stack_index": i, "name": stack[i].name, "quality": q}
                prompt = given.get(i) or visible_prompt(alphas[i], above)
                if prompt is None and "hidden" not in why:
                    why.append("hidden")
                if why:
                    rejected.append({**meta, "reasons": why})
                    reasons.update(why)
                    continue
                d = tmp / rec["id"]
                if not written:
                    d.mkdir()
                    to_pil(image).save(d / "image.png")
                    written = True
                to_pil(stack[i].rgba).save(d / f"layer_{i:02d}.png")
                prompt = {**prompt, "name": stack[i].name}
                kept.append({"image": f"{rec['id']}/image.png", "layer": f"{rec['id']}/layer_{i:02d}.png",
                             "prompt": prompt, **meta})
            if progress:
                progress(rec["id"], f"{sum(k['source'] == rec['id'] for k in kept)}/{len(stack) - 1} layers kept")
        doc = {"task": "reflayer", "from_batch": str(batch_dir.resolve()), "filter": asdict(filt),
               "images": len(records), "kept": len(kept), "rejected": len(rejected), "rejected_by_reason": dict(reasons)}
        (tmp / "index.jsonl").write_text("".join(json.dumps(k) + "\n" for k in kept))
        (tmp / "rejected.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejected))
        (tmp / "filter.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def add_args(p: Any) -> None:
    """``--from-batch`` and the filter thresholds of ``make-dataset --task reflayer``."""
    d = QualityFilter()
    g = p.add_argument_group("reflayer triplets from a batch output (--task reflayer --from-batch DIR)")
    g.add_argument("--from-batch", default=None, metavar="DIR", help="output folder of 'layerkit batch'")
    g.add_argument("--min-psnr", type=float, default=d.min_psnr, help="least recomposition PSNR (dB) of the image's stack")
    g.add_argument("--min-mass", type=float, default=d.min_mass, help="least mean alpha of a layer")
    g.add_argument("--max-mass", type=float, default=d.max_mass, help="most mean alpha of a layer")
    g.add_argument("--min-visible", type=float, default=d.min_visible, help="least visible share of a layer's alpha")
    g.add_argument("--max-border", type=float, default=d.max_border, help="most share of the image frame a layer covers")
    g.add_argument("--max-soft", type=float, default=d.max_soft,
                   help="most width of a layer's semi-transparent band, as a share of its size")
    g.add_argument("--min-edge", type=float, default=d.min_edge, help="least image-gradient ratio on the alpha edge")


def run_from_batch(args: Any) -> int:
    """``make-dataset --task reflayer --from-batch DIR -o OUT``."""
    import sys

    from layerkit.batch.index import read_records
    from layerkit.evaluation.runner import EtaProgress

    filt = QualityFilter(args.min_psnr, args.min_mass, args.max_mass, args.min_visible, args.max_border, args.max_soft,
                         args.min_edge)
    n = sum(r.get("status") == "ok" for r in read_records(args.from_batch).values()) if Path(args.from_batch).is_dir() else 0
    bar = EtaProgress(n, "triplets", enabled=not args.quiet)
    doc = make_triplets(args.from_batch, args.output, filt, overwrite=args.overwrite, progress=bar.update)
    if not args.quiet:
        print(f"kept {doc['kept']} of {doc['kept'] + doc['rejected']} layers from {doc['images']} images "
              f"(rejected by reason: {doc['rejected_by_reason']})", file=sys.stderr)
    print(args.output)
    return 0
