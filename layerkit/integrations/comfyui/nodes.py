"""ComfyUI nodes over :class:`layerkit.Pipeline`.

ComfyUI's types: ``IMAGE`` is a float tensor ``B×H×W×C`` in ``[0, 1]`` (C = 3, or 4 for RGBA
layers here); ``MASK`` is ``B×H×W`` (or ``H×W``). ComfyUI's LoadImage gives ``MASK = 1 − α`` of the
file (painted = 1 in its mask editor); a MASK *prompt* here is therefore read as 1 = the object,
and ``invert_mask`` flips one that is an alpha. Outputs give both conventions: ``alpha``
(1 = object, what segmentation nodes output) and ``transparency`` (``1 − α``, what
JoinImageWithAlpha expects).

Pipelines are built once per config spec and cached (:func:`pipeline`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from layerkit.errors import OutputError, PromptError
from layerkit.types import Layer, LayerStack, Prompt

_PIPELINES: dict[str, Any] = {}
CATEGORY = "layerkit"


def pipeline(config: str) -> Any:
    """The cached :class:`~layerkit.pipelines.decompose.Pipeline` of ``config`` (built on first use)."""
    from layerkit import Pipeline

    spec = (config or "classical").strip()
    if spec not in _PIPELINES:
        _PIPELINES[spec] = Pipeline.from_config(spec)
    return _PIPELINES[spec]


def to_numpy(t: Any) -> np.ndarray:
    """A torch tensor (or array) → float32 numpy array on the CPU."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().float().numpy()
    return np.asarray(t, np.float32)


def to_tensor(a: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(a, np.float32))


def _images(image: Any) -> np.ndarray:
    a = to_numpy(image)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[3] not in (3, 4):
        raise PromptError(f"IMAGE must be B×H×W×3 (or ×4), got shape {tuple(a.shape)}")
    return a[..., :3]


def _masks(mask: Any, n: int, size: tuple[int, int], invert: bool) -> list[np.ndarray | None]:
    if mask is None:
        return [None] * n
    m = to_numpy(mask)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[1:] != size:
        raise PromptError(f"MASK must be B×H×W with H×W = {size[0]}×{size[1]} (the image's), got shape {tuple(m.shape)}")
    if m.shape[0] not in (1, n):
        raise PromptError(f"MASK batch is {m.shape[0]} but IMAGE batch is {n}; give 1 or {n} masks")
    m = 1.0 - m if invert else m
    return [m[min(i, m.shape[0] - 1)] >= 0.5 for i in range(n)]


def parse_points(text: str) -> tuple[list[list[float]], list[int]]:
    """``"x,y[,label]; x,y[,label] …"`` → (points, labels); label 1 = object (default), 0 = not object."""
    pts, labels = [], []
    for part in (text or "").replace("\n", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        try:
            vals = [float(v) for v in part.split(",")]
        except ValueError:
            vals = []
        if len(vals) not in (2, 3) or (len(vals) == 3 and vals[2] not in (0, 1)):
            raise PromptError(f"point {part!r} is not valid; write x,y or x,y,label (label 0 or 1), separated by ';'")
        pts.append(vals[:2])
        labels.append(int(vals[2]) if len(vals) == 3 else 1)
    return pts, labels


def parse_box(text: str) -> list[float] | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4:
        raise PromptError(f"box {text!r} is not valid; write x0,y0,x1,y1 in pixels")
    return vals


class LayerkitDecompose:
    """Image + box / points / mask / phrase → object RGBA, alpha, background, transparency."""

    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE", "MASK")
    RETURN_NAMES = ("object_rgba", "alpha", "background", "transparency")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ("IMAGE",), "config": ("STRING", {"default": "classical"})},
                "optional": {"box": ("STRING", {"default": ""}), "points": ("STRING", {"default": ""}),
                             "mask": ("MASK",), "text": ("STRING", {"default": ""}),
                             "invert_mask": ("BOOLEAN", {"default": False})}}

    def run(self, image: Any, config: str = "classical", box: str = "", points: str = "", mask: Any = None,
            text: str = "", invert_mask: bool = False) -> tuple[Any, Any, Any, Any]:
        imgs = _images(image)
        n, h, w = imgs.shape[:3]
        masks = _masks(mask, n, (h, w), invert_mask)
        b = parse_box(box)
        pts, labels = parse_points(points)
        pipe = pipeline(config)
        fgs, alphas, bgs = [], [], []
        for img, m in zip(imgs, masks):
            prompt = Prompt(points=pts or None, labels=labels or None, boxes=[b] if b else None, mask=m,
                            text=text or None)
            res = pipe(img, prompt)
            fgs.append(res.foreground)
            alphas.append(res.alpha)
            bgs.append(res.background)
        alpha = np.stack(alphas)
        return to_tensor(np.stack(fgs)), to_tensor(alpha), to_tensor(np.stack(bgs)), to_tensor(1.0 - alpha)


class LayerkitLayers:
    """Image + several prompts (JSON list) → a batch of RGBA layers, background first."""

    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = ("IMAGE", "MASK", "STRING")
    RETURN_NAMES = ("layers_rgba", "alphas", "names")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        example = '[{"boxes": [[10, 20, 200, 300]], "name": "cat"}, {"points": [[300, 200]]}]'
        return {"required": {"image": ("IMAGE",), "prompts": ("STRING", {"default": example, "multiline": True}),
                             "config": ("STRING", {"default": "classical+peel"})}}

    def run(self, image: Any, prompts: str, config: str = "classical+peel") -> tuple[Any, Any, str]:
        from layerkit.app.prompts import prompts_from_json

        imgs = _images(image)
        if imgs.shape[0] != 1:
            raise PromptError(f"the Layers node takes one image, got a batch of {imgs.shape[0]}")
        parsed, names = prompts_from_json(prompts)
        stack = pipeline(config).layers(imgs[0], parsed, names=names)
        rgba = np.stack([layer.rgba for layer in stack])
        return to_tensor(rgba), to_tensor(rgba[..., 3]), json.dumps(stack.names)


class LayerkitSaveLayers:
    """A batch of RGBA layers (bottom → top) → a PSD or ORA file in ComfyUI's output folder."""

    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"layers_rgba": ("IMAGE",), "filename_prefix": ("STRING", {"default": "layerkit"}),
                             "format": (["psd", "ora"],)},
                "optional": {"names": ("STRING", {"default": ""}), "output_dir": ("STRING", {"default": ""})}}

    def save(self, layers_rgba: Any, filename_prefix: str = "layerkit", format: str = "psd", names: str = "",
             output_dir: str = "") -> dict[str, Any]:
        a = to_numpy(layers_rgba)
        if a.ndim != 4 or a.shape[3] not in (3, 4):
            raise PromptError(f"layers must be an IMAGE batch N×H×W×4 (RGBA, bottom first), got shape {tuple(a.shape)}")
        if a.shape[3] == 3:
            a = np.concatenate([a, np.ones(a.shape[:3] + (1,), np.float32)], axis=3)
        given = _names(names)
        layer_names = [given[i] if i < len(given) else ("background" if i == 0 else f"layer_{i}") for i in range(len(a))]
        stack = LayerStack([Layer(rgba, name=nm) for rgba, nm in zip(a, layer_names)])
        if format not in ("psd", "ora"):
            raise OutputError(f"unknown format {format!r}; use psd or ora")
        folder = output_dir or _comfy_output_dir()
        os.makedirs(folder, exist_ok=True)
        i = 1
        while os.path.exists(path := os.path.join(folder, f"{filename_prefix}_{i:05d}.{format}")):
            i += 1
        stack.save(path)
        return {"ui": {"text": [path]}, "result": (path,)}


def _names(text: str) -> list[str]:
    text = (text or "").strip()
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text)]
        except json.JSONDecodeError:
            raise PromptError("names must be a JSON list or comma-separated text") from None
    return [t.strip() for t in text.split(",") if t.strip()]


def _comfy_output_dir() -> str:
    try:
        import folder_paths  # ComfyUI's module, present inside ComfyUI

        return str(folder_paths.get_output_directory())
    except ImportError:
        return os.path.abspath("output")


NODE_CLASS_MAPPINGS = {
    "LayerkitDecompose": LayerkitDecompose,
    "LayerkitLayers": LayerkitLayers,
    "LayerkitSaveLayers": LayerkitSaveLayers,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LayerkitDecompose": "layerkit Decompose (object + background)",
    "LayerkitLayers": "layerkit Layers (several prompts)",
    "LayerkitSaveLayers": "layerkit Save PSD/ORA",
}
