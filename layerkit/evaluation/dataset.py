"""Synthetic multi-layer ground truth: several RGBA objects over a photo, with controlled occlusion.

``make_dataset`` writes one folder per sample (format documented in ``docs/benchmarks.md``)::

    OUT/index.json                 parameters + one entry per sample
    OUT/NNNN/composite.png         RGB, exactly the 8-bit GT stack composited, rounded to 8 bits
    OUT/NNNN/layers/               the GT LayerStack folder (layer_00.png background … top,
                                   layers.json), bottom → top, readable with LayerStack.load
    OUT/NNNN/prompts.json          one entry per object, bottom → top: "layer" (its index in the
                                   stack), "label", "box_xyxy" and "point_xy" of its *visible*
                                   part, "amodal_box_xyxy", "occlusion" (share of its alpha
                                   hidden by the objects above it), "cover", "scale", "offset_xy"

Placement: objects are placed bottom → top; an object is scaled so that its tight box covers a
random share of the canvas in ``cover`` and moved at random (wholly inside the canvas) until
every object below it is hidden by at most ``occlusion[1]`` and the one just below by at least
``occlusion[0]``. Everything is drawn from ``numpy.random.default_rng([seed, index])``, so a
sample depends only on the seed, its index, the flags and the sorted file lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from layerkit.errors import DataError
from layerkit.io.atomic import atomic_path
from layerkit.io.image import to_uint8
from layerkit.ops.compositing import resize_rgba
from layerkit.types import Layer, LayerStack, Prompt

PAD = 3          # transparent pixels added around an object before resampling
MARGIN = 2       # smallest distance between a placed object and the canvas border
FG_SUFFIXES = (".png",)
BG_SUFFIXES = (".jpg", ".jpeg", ".png")


def label_from_name(path: str | Path) -> str:
    """``"white_cow_01.png"`` → ``"white cow"`` (trailing ``_NN`` dropped, underscores as spaces)."""
    stem = re.sub(r"_\d+$", "", Path(path).stem)
    return stem.replace("_", " ").strip()


def _files(folder: str | Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"{what} folder {str(d)!r} does not exist or is not a folder")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        raise DataError(f"{what} folder {str(d)!r} holds no {'/'.join(suffixes)} file")
    return files


def _load_object(path: Path) -> np.ndarray:
    """RGBA float64 cropped to ``α > 0`` and padded with :data:`PAD` transparent pixels."""
    with Image.open(path) as im:
        if im.mode not in ("RGBA", "LA", "PA") and not (im.mode == "P" and "transparency" in im.info):
            raise DataError(f"foreground {str(path)!r} has no alpha channel; foregrounds must be RGBA PNGs")
        a = np.asarray(im.convert("RGBA"), np.float64) / 255.0
    ys, xs = np.nonzero(a[..., 3] > 0)
    if ys.size == 0:
        raise DataError(f"foreground {str(path)!r} is fully transparent")
    a = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return np.pad(a, ((PAD, PAD), (PAD, PAD), (0, 0)))


def _load_background(path: Path, max_side: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        k = max_side / max(im.size)
        if k < 1:
            im = im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.LANCZOS)
        return np.asarray(im, np.float64) / 255.0


def _box(mask: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    return None if ys.size == 0 else [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _point(visible: np.ndarray) -> list[int]:
    """The pixel with visible α > 0.9 nearest the centroid of such pixels (else the max-α pixel)."""
    ys, xs = np.nonzero(visible > 0.9)
    if ys.size:
        i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
        return [int(xs[i]), int(ys[i])]
    iy, ix = np.unravel_index(int(np.argmax(visible)), visible.shape)
    return [int(ix), int(iy)]


def _occlusion(alpha: np.ndarray, transmit: np.ndarray) -> float:
    total = float(alpha.sum())
    return 1.0 - float((alpha * transmit).sum()) / total if total > 0 else 0.0


def _place(objects: list[np.ndarray], canvas: tuple[int, int], rng: np.random.Generator, cover: tuple[float, float],
           occlusion: tuple[float, float], tries: int) -> list[dict[str, Any]] | None:
    """Place objects bottom → top under the occlusion rule; None when some object found no spot."""
    h, w = canvas
    placed: list[dict[str, Any]] = []
    transmit: list[np.ndarray] = []  # per placed object: Π (1 − α) of the objects above it
    for k, obj in enumerate(objects):
        fh, fw = obj.shape[:2]
        tight = _box(obj[..., 3] > 0.1) or [0, 0, fw, fh]
        tw, th = tight[2] - tight[0], tight[3] - tight[1]
        for _ in range(tries):
            c = rng.uniform(*cover)
            s = min(np.sqrt(c * w * h / (tw * th)), (w - 2 * MARGIN) / fw, (h - 2 * MARGIN) / fh)
            nw, nh = max(1, int(round(fw * s))), max(1, int(round(fh * s)))
            ox, oy = int(rng.integers(MARGIN, w - nw - MARGIN + 1)), int(rng.integers(MARGIN, h - nh - MARGIN + 1))
            small = resize_rgba(obj, (nh, nw), "lanczos").astype(np.float64)
            alpha = np.zeros((h, w))
            alpha[oy:oy + nh, ox:ox + nw] = small[..., 3]
            new_t = [t * (1.0 - alpha) for t in transmit]
            occ = [_occlusion(p["alpha"], t) for p, t in zip(placed, new_t)]
            if k and (max(occ) > occlusion[1] or occ[-1] < occlusion[0]):
                continue
            rgb = np.zeros((h, w, 3))
            rgb[oy:oy + nh, ox:ox + nw] = small[..., :3]
            placed.append({"alpha": alpha, "rgb": rgb, "scale": float(s), "offset_xy": [ox, oy],
                           "cover": float(tw * th * s * s / (w * h))})
            transmit = new_t + [np.ones((h, w))]
            break
        else:
            return None
    return placed


def make_sample(fg_files: list[Path], bg_files: list[Path], index: int, seed: int, objects: tuple[int, int],
                cover: tuple[float, float] = (0.05, 0.25), occlusion: tuple[float, float] = (0.05, 0.4),
                max_side: int = 640, tries: int = 200, restarts: int = 20) -> tuple[LayerStack, np.ndarray, dict[str, Any]]:
    """Draw one sample.

    Returns:
        ``(stack, composite, meta)``: the 8-bit-exact GT :class:`LayerStack` (bottom → top), the
        ``H×W×3`` uint8 composite and the ``prompts.json`` content.

    Raises:
        DataError: no placement satisfies the occlusion range after ``restarts`` attempts.
    """
    rng = np.random.default_rng([seed, index])
    bg_path = bg_files[int(rng.integers(len(bg_files)))]
    bg = _load_background(bg_path, max_side)
    h, w = bg.shape[:2]
    for _ in range(restarts):
        k = int(rng.integers(objects[0], objects[1] + 1))
        chosen = [fg_files[i] for i in rng.choice(len(fg_files), size=k, replace=False)]
        placed = _place([_load_object(p) for p in chosen], (h, w), rng, cover, occlusion, tries)
        if placed is not None:
            break
    else:
        raise DataError(f"sample {index}: no placement met occlusion {occlusion[0]:g}..{occlusion[1]:g} after {restarts} "
                        "attempts; widen --occlusion or lower --cover")
    a8 = [to_uint8(p["alpha"]) for p in placed]
    layers = [Layer.from_rgb((to_uint8(bg) / 255.0).astype(np.float32), name="background")]
    for p, path, a in zip(placed, chosen, a8):
        f8 = to_uint8(p["rgb"])
        f8[a == 0] = 0
        rgba = np.concatenate([f8, a[..., None]], axis=2).astype(np.float32) / 255.0
        layers.append(Layer(rgba, name=label_from_name(path)))
    alphas = [a.astype(np.float64) / 255.0 for a in a8]
    entries = []
    for i, (p, path) in enumerate(zip(placed, chosen)):
        transmit = np.prod([1.0 - x for x in alphas[i + 1:]], axis=0) if i + 1 < len(alphas) else np.ones((h, w))
        visible = alphas[i] * transmit
        box = _box(visible > 0.1) or _box(visible > 0)
        entries.append({"layer": i + 1, "label": label_from_name(path), "file": path.name, "box_xyxy": box,
                        "point_xy": _point(visible), "amodal_box_xyxy": _box(alphas[i] > 0.1) or _box(alphas[i] > 0),
                        "occlusion": round(_occlusion(alphas[i], transmit), 4),
                        "cover": round(p["cover"], 4), "scale": round(p["scale"], 4), "offset_xy": p["offset_xy"]})
        layers[i + 1].prompt = Prompt(boxes=[box])
    stack = LayerStack(layers)
    composite = to_uint8(stack.composite()[..., :3])
    meta = {"objects": entries, "canvas_wh": [w, h], "bg_file": bg_path.name, "seed": seed, "index": index}
    return stack, composite, meta


def make_dataset(fg_dir: str | Path, bg_dir: str | Path, out: str | Path, n: int = 50, objects: tuple[int, int] = (3, 3),
                 seed: int = 0, cover: tuple[float, float] = (0.05, 0.25), occlusion: tuple[float, float] = (0.05, 0.4),
                 max_side: int = 640, overwrite: bool = False,
                 progress: Callable[[int, dict[str, Any]], None] | None = None, tries: int = 200, restarts: int = 20) -> Path:
    """Write ``n`` multi-layer samples to ``out`` (atomically: complete folder or nothing).

    Args:
        fg_dir: folder of straight-alpha RGBA PNG objects (file name = ``label_NN.png``).
        bg_dir: folder of background photos (JPEG/PNG).
        out: output folder.
        n: number of samples.
        objects: ``(min, max)`` objects per sample, within 2…6.
        seed: random seed.
        cover: ``(min, max)`` share of the canvas covered by an object's tight box.
        occlusion: ``(min, max)`` share of an object hidden by the objects above it.
        max_side: backgrounds are downscaled to this long side.
        overwrite: replace an existing ``out``.
        progress: ``callback(index, meta)`` after each sample.
        tries: random placements tried per object before the sample starts over.
        restarts: fresh draws (object choice and count) before giving up on a sample.

    Raises:
        DataError: bad folders or ranges, too few foregrounds, impossible occlusion.
    """
    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    if max_side < 32:
        raise DataError(f"--max-side must be at least 32 px (objects are placed at a fraction of it), got {max_side}")
    if not (2 <= objects[0] <= objects[1] <= 6):
        raise DataError(f"--objects must be within 2..6 (MIN..MAX with MIN <= MAX), got {objects[0]}..{objects[1]}")
    if not (0.0 <= occlusion[0] <= occlusion[1] < 1.0):
        raise DataError(f"--occlusion must be MIN,MAX with 0 <= MIN <= MAX < 1, got {occlusion[0]:g},{occlusion[1]:g}")
    if not (0.0 < cover[0] <= cover[1] <= 1.0):
        raise DataError(f"--cover must be MIN,MAX with 0 < MIN <= MAX <= 1, got {cover[0]:g},{cover[1]:g}")
    fgs, bgs = _files(fg_dir, FG_SUFFIXES, "foreground"), _files(bg_dir, BG_SUFFIXES, "background")
    if len(fgs) < objects[1]:
        raise DataError(f"{len(fgs)} foreground file(s) in {str(fg_dir)!r} but up to {objects[1]} distinct objects per sample")
    index = []
    with atomic_path(out, overwrite=overwrite, directory=True) as tmp:
        tmp.chmod(0o755)
        for i in range(n):
            stack, composite, meta = make_sample(fgs, bgs, i, seed, objects, cover, occlusion, max_side, tries, restarts)
            d = tmp / f"{i:04d}"
            d.mkdir()
            Image.fromarray(composite, "RGB").save(d / "composite.png")
            stack.save(d / "layers")
            (d / "prompts.json").write_text(json.dumps(meta, indent=1))
            index.append({"dir": d.name, "n_objects": len(meta["objects"]), "bg_file": meta["bg_file"],
                          "labels": [o["label"] for o in meta["objects"]], "occlusion": [o["occlusion"] for o in meta["objects"]]})
            if progress is not None:
                progress(i, meta)
        params = {"fg_dir": str(fg_dir), "bg_dir": str(bg_dir), "n": n, "objects": list(objects), "seed": seed,
                  "cover": list(cover), "occlusion": list(occlusion), "max_side": max_side}
        (tmp / "index.json").write_text(json.dumps({"format": "layerkit.multilayer/1", "params": params, "samples": index}, indent=1))
    return Path(out)


@dataclass(frozen=True)
class LayerSample:
    """One sample folder of a multi-layer data set (see the module docstring)."""

    id: str
    path: Path
    meta: dict

    def prompts(self, kind: str = "box") -> list[Prompt]:
        """One prompt per object, bottom → top (``box``, ``point`` or ``box+point``)."""
        return [Prompt(boxes=[o["box_xyxy"]] if "box" in kind else None, points=[o["point_xy"]] if "point" in kind else None)
                for o in self.meta["objects"]]

    def ground_truth(self) -> LayerStack:
        """The GT stack (background first)."""
        return LayerStack.load(self.path / "layers")


def find_layer_samples(data_dir: str | Path) -> list[LayerSample]:
    """List and check the samples of a ``make-dataset`` folder.

    Raises:
        DataError: missing folder, no sample, or a sample missing a file or prompt.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist or is not a folder; make one with layerkit make-dataset")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and ((d / "prompts.json").exists() or (d / "layers").exists()))
    if not dirs:
        raise DataError(f"{str(root)!r} holds no sample folder (composite.png, layers/, prompts.json); "
                        "is it the output of layerkit make-dataset?")
    samples = []
    for d in dirs:
        missing = [f for f in ("composite.png", "layers/layers.json", "prompts.json") if not (d / f).is_file()]
        if missing:
            raise DataError(f"sample {str(d)!r} is missing {', '.join(missing)}")
        try:
            meta = json.loads((d / "prompts.json").read_text())
            ok = all(len(o["box_xyxy"]) == 4 and len(o["point_xy"]) == 2 for o in meta["objects"]) and meta["objects"]
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{str(d / 'prompts.json')!r} is not valid: {e}") from None
        if not ok:
            raise DataError(f"{str(d / 'prompts.json')!r} lists no object with box_xyxy and point_xy")
        samples.append(LayerSample(d.name, d, meta))
    return samples
