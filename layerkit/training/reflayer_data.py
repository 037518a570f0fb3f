"""RefLade-style triplets (image, prompt mix, complete layer) made on the fly from FG/BG folders, or read back.

One triplet (:func:`make_triplet`, ``S×S``): a background window; the *target* object (an RGBA
file of the FG folder) scaled to cover ``target_cover`` of the window; 0–2 *occluders* (other
FG files) placed over it until the target's hidden share (its alpha mass under the occluders)
falls in ``occlusion`` (the best of ``tries`` placements otherwise; the share is recorded). The
complete layer is the target's whole RGBA, its colour extended beyond ``α = 0`` (push-pull) so
the VAE sees no black fringe. Prompts of the *visible* part: its box (jittered), one point on
it, its mask, and the label from the file name (``white_cow_01.png`` → ``"white cow"``).

**Prompt dropout** (:func:`drop_prompts`): each kind is kept with probability ``keep``, at least
one always, so every kind and combination is seen. The kept ones are drawn on the canvas
(:func:`~layerkit.modules.decomposer.reflayer_nets.draw_canvas`); the text goes to the text
encoder (empty when dropped).

``layerkit make-dataset --task reflayer`` writes triplets with every prompt kind
(``NNNN/image.png``, ``layer.png`` (RGBA), ``visible.png``, ``meta.json``); the dropout is drawn
at load time, so a written set serves all prompt mixes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerkit.errors import DataError
from layerkit.ops.compositing import resize_rgba
from layerkit.training.synth import _resize, fill_colors

KINDS = ("point", "box", "mask", "text")


def _label(path: Path) -> str:
    from layerkit.evaluation.dataset import label_from_name

    return label_from_name(path)


def _place(rgba: np.ndarray, size: int, cover: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb S×S×3, alpha S×S)`` of ``rgba`` scaled so its box covers ``cover`` of the window, placed at random inside."""
    ys, xs = np.nonzero(rgba[..., 3] > 0.05)
    if ys.size == 0:
        raise DataError("a foreground file is fully transparent")
    rgba = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = rgba.shape[:2]
    k = min(np.sqrt(cover * size * size / (h * w)), (size - 2) / h, (size - 2) / w)
    f = resize_rgba(rgba, (max(1, round(h * k)), max(1, round(w * k))))
    if rng.random() < 0.5:
        f = np.ascontiguousarray(f[:, ::-1])
    fh, fw = f.shape[:2]
    oy, ox = int(rng.integers(0, size - fh + 1)), int(rng.integers(0, size - fw + 1))
    rgb, a = np.zeros((size, size, 3), np.float32), np.zeros((size, size), np.float32)
    rgb[oy:oy + fh, ox:ox + fw], a[oy:oy + fh, ox:ox + fw] = f[..., :3], f[..., 3]
    return rgb, a


def make_triplet(target: np.ndarray, occluders: Sequence[np.ndarray], bg: np.ndarray, size: int, rng: np.random.Generator,
                 target_cover: tuple[float, float] = (0.1, 0.4), occluder_cover: tuple[float, float] = (0.05, 0.25),
                 occlusion: tuple[float, float] = (0.1, 0.5), tries: int = 12) -> dict[str, Any]:
    """One triplet (module docstring); arrays float32 in ``[0, 1]``, 8-bit rounded.

    Returns:
        ``image`` ``S×S×3``, ``layer`` ``S×S×3`` (colour extended beyond alpha), ``alpha`` ``S×S``
        (complete), ``visible`` ``S×S``, ``box`` xyxy, ``point`` xy, ``occlusion`` (hidden share).
    """
    k = max(size / min(bg.shape[:2]), rng.uniform(0.5, 1.0) * size / min(bg.shape[:2]) * 1.5)
    b = _resize(bg, int(np.ceil(bg.shape[1] * k)), int(np.ceil(bg.shape[0] * k)))
    y0, x0 = int(rng.integers(b.shape[0] - size + 1)), int(rng.integers(b.shape[1] - size + 1))
    B = np.ascontiguousarray(b[y0:y0 + size, x0:x0 + size], dtype=np.float32)
    F, A = _place(target, size, rng.uniform(*target_cover), rng)
    A = np.round(A * 255) / 255
    cover = np.zeros_like(A)
    over_rgb = np.zeros_like(B)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for occ in occluders:
        for _ in range(tries):
            rgb, a = _place(occ, size, rng.uniform(*occluder_cover), rng)
            a = np.round(a * 255) / 255
            new_cover = 1 - (1 - cover) * (1 - a)
            share = float((A * new_cover).sum() / max(A.sum(), 1e-6))
            dist = 0.0 if occlusion[0] <= share <= occlusion[1] else min(abs(share - occlusion[0]), abs(share - occlusion[1]))
            if best is None or dist < best[0]:
                best = (dist, rgb, a)
            if dist == 0.0:
                break
        assert best is not None
        _, rgb, a = best
        over_rgb = rgb * a[..., None] + over_rgb * (1 - a[..., None])
        cover = 1 - (1 - cover) * (1 - a)
        best = None
    over_rgb = np.divide(over_rgb, cover[..., None], out=np.zeros_like(over_rgb), where=cover[..., None] > 1e-6)
    comp = A[..., None] * F + (1 - A[..., None]) * B
    comp = cover[..., None] * over_rgb + (1 - cover[..., None]) * comp
    visible = A * (1 - cover)
    ys, xs = np.nonzero(visible > 0.5)
    if ys.size == 0:
        ys, xs = np.nonzero(A > 0.5) if (A > 0.5).any() else (np.array([size // 2]), np.array([size // 2]))
    j = rng.uniform(-0.05, 0.05, 4) * size
    box = [float(np.clip(xs.min() + j[0], 0, size)), float(np.clip(ys.min() + j[1], 0, size)),
           float(np.clip(xs.max() + 1 + j[2], 0, size)), float(np.clip(ys.max() + 1 + j[3], 0, size))]
    i = int(rng.integers(ys.size))
    return {"image": np.round(np.clip(comp, 0, 1) * 255).astype(np.float32) / 255,
            "layer": np.round(fill_colors(F, A) * 255).astype(np.float32) / 255, "alpha": A.astype(np.float32),
            "visible": visible.astype(np.float32), "box": box, "point": [float(xs[i]), float(ys[i])],
            "occlusion": float((A * cover).sum() / max(A.sum(), 1e-6))}


def drop_prompts(rng: np.random.Generator, keep: float = 0.5, kinds: Sequence[str] = KINDS) -> set[str]:
    """The prompt kinds kept for one sample: each with probability ``keep``, at least one."""
    kept = {k for k in kinds if rng.random() < keep}
    return kept or {kinds[int(rng.integers(len(kinds)))]}


def to_tensors(t: dict[str, Any], label: str, kept: set[str]) -> dict[str, Any]:
    """A training sample: ``image``, ``layer``, ``canvas`` ``3×S×S``, ``alpha``, ``visible`` ``1×S×S``, ``text``."""
    import torch

    from layerkit.modules.decomposer.reflayer_nets import draw_canvas

    size = t["image"].shape[:2]
    canvas = draw_canvas(size, np.array([t["point"]]) if "point" in kept else None, None,
                         np.array([t["box"]]) if "box" in kept else None, t["visible"] if "mask" in kept else None)

    def chw(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x[None] if x.ndim == 2 else x.transpose(2, 0, 1), dtype=np.float32))

    return {"image": chw(t["image"]), "layer": chw(t["layer"]), "alpha": chw(t["alpha"]), "visible": chw(t["visible"]),
            "canvas": chw(canvas), "text": label if "text" in kept else "", "occlusion": float(t["occlusion"])}


def write_triplets(fg_dir: str | os.PathLike, bg_dir: str | os.PathLike, out: str | os.PathLike, n: int, size: int = 256,
                   seed: int = 0, occlusion: tuple[float, float] = (0.1, 0.5), overwrite: bool = False) -> Path:
    """``make-dataset --task reflayer``: ``n`` triplets with every prompt kind, written atomically.

    Raises:
        DataError: bad folders, fewer than two foregrounds, ``n < 1``.
    """
    from PIL import Image

    from layerkit.io.atomic import atomic_path
    from layerkit.training.datamodule import list_images

    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    for flag, folder in (("--fg-dir", fg_dir), ("--bg-dir", bg_dir)):
        if not Path(folder).is_dir():
            raise DataError(f"{flag} {str(folder)!r} does not exist or is not a folder")
    fgs, bgs = [p for p in list_images(fg_dir, "fg") if p.suffix.lower() == ".png"], list_images(bg_dir, "bg")
    if len(fgs) < 2:
        raise DataError(f"foreground folder {str(fg_dir)!r} needs at least 2 RGBA PNG files (a target and an occluder)")
    loader = _Loader()
    with atomic_path(out, overwrite=overwrite, directory=True) as tmp:
        index = []
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            t_idx = int(rng.integers(len(fgs)))
            others = [j for j in range(len(fgs)) if j != t_idx]
            occ = [fgs[j] for j in rng.choice(others, size=min(len(others), int(rng.choice([1, 1, 2]))), replace=False)]
            t = make_triplet(loader.rgba(fgs[t_idx]), [loader.rgba(p) for p in occ], loader.rgb(bgs[int(rng.integers(len(bgs)))]),
                             size, rng, occlusion=occlusion)
            d = tmp / f"{i:05d}"
            d.mkdir()
            Image.fromarray((t["image"] * 255).round().astype(np.uint8)).save(d / "image.png")
            rgba = np.concatenate([t["layer"], t["alpha"][..., None]], 2)
            Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(d / "layer.png")
            Image.fromarray((t["visible"] * 255).round().astype(np.uint8)).save(d / "visible.png")
            meta = {"target": fgs[t_idx].name, "text": _label(fgs[t_idx]), "occluders": [p.name for p in occ],
                    "box_xyxy": t["box"], "point_xy": t["point"], "occlusion": round(t["occlusion"], 4)}
            (d / "meta.json").write_text(json.dumps(meta))
            index.append({"dir": d.name, **meta})
        (tmp / "index.json").write_text(json.dumps({"format": "layerkit.reflayer/1", "size": size, "seed": seed,
                                                    "occlusion": list(occlusion), "samples": index}, indent=1))
    return Path(out)


def read_triplet(d: Path) -> tuple[dict[str, Any], str, str]:
    """``(triplet, label, target file name)`` of one written sample folder."""
    from PIL import Image

    meta = json.loads((d / "meta.json").read_text())
    with Image.open(d / "layer.png") as im:
        rgba = np.asarray(im.convert("RGBA"), np.float32) / 255
    with Image.open(d / "image.png") as im:
        image = np.asarray(im.convert("RGB"), np.float32) / 255
    with Image.open(d / "visible.png") as im:
        visible = np.asarray(im.convert("L"), np.float32) / 255
    t = {"image": image, "layer": rgba[..., :3], "alpha": rgba[..., 3], "visible": visible, "box": meta["box_xyxy"],
         "point": meta["point_xy"], "occlusion": meta["occlusion"]}
    return t, meta["text"], meta["target"]


class _Loader:
    """Decoded-image cache."""

    def __init__(self) -> None:
        self._cache: dict[Path, np.ndarray] = {}

    def _get(self, path: Path, mode: str) -> np.ndarray:
        if path not in self._cache:
            from PIL import Image

            try:
                with Image.open(path) as im:
                    if mode == "RGBA" and im.mode not in ("RGBA", "LA", "PA") and "transparency" not in im.info:
                        raise DataError(f"foreground {str(path)!r} has no alpha channel; foregrounds must be RGBA PNGs")
                    self._cache[path] = np.asarray(im.convert(mode))
            except OSError as e:
                raise DataError(f"cannot read training image {str(path)!r}: {e}") from None
        return self._cache[path].astype(np.float32) / 255.0

    def rgba(self, path: Path) -> np.ndarray:
        return self._get(path, "RGBA")

    def rgb(self, path: Path) -> np.ndarray:
        return self._get(path, "RGB")
