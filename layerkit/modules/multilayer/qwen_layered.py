"""Qwen-Image-Layered (diffusers ``QwenImageLayeredPipeline``) as a multi-layer backend.

The model decomposes one RGB image into ``N`` RGBA layers in a single diffusion run (VLD-MMDiT
on an RGBA-VAE latent; Yin et al. 2025). This wrapper adds what layerkit needs around it:

* **resolution bucket** — the pipeline works at about ``resolution²`` pixels (640 or 1024)
  with the input's aspect ratio, sides multiples of 16 (:func:`bucket_size`);
* **frames → layers** — the pipeline's frames are float RGBA, bottom → top; a leading
  composite frame (``layers + 1`` frames, as some releases return) is dropped
  (:func:`frames_to_layers`);
* **back to the input size** — each layer is resized premultiplied (no dark fringes);
* **stack conventions** — the bottom layer is made opaque (over the input), and with
  ``consistent=True`` its colour is re-solved so the stack recomposes the input exactly where
  the layers above leave any transmission (:func:`solve_background`).

Weights (``Qwen/Qwen-Image-Layered``, ~60 GB in bf16) are never downloaded here: ``model`` must
be a local folder or a hub id already in the local cache.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from layerkit.modules.base import MultiLayer
from layerkit.ops.compositing import resize_rgba
from layerkit.progress import diffusers_bar_config
from layerkit.types import Layer, LayerStack

HUB_ID = "Qwen/Qwen-Image-Layered"
RESOLUTIONS = (640, 1024)


def bucket_size(height: int, width: int, resolution: int = 640) -> tuple[int, int]:
    """``(h, w)`` the pipeline works at: area ``resolution²``, the input's aspect ratio,
    sides rounded to multiples of 32 then floored to multiples of 16."""
    if resolution not in RESOLUTIONS:
        from layerkit.errors import ConfigError

        raise ConfigError(f"multilayer.resolution must be one of {RESOLUTIONS}, got {resolution}")
    ratio = width / height
    w = round(math.sqrt(resolution * resolution * ratio) / 32) * 32
    h = round(math.sqrt(resolution * resolution * ratio) / ratio / 32) * 32
    return h // 16 * 16, w // 16 * 16


def frames_to_layers(frames: np.ndarray, layers: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Pipeline output → canvas-sized straight RGBA layers, bottom → top.

    Args:
        frames: ``N×h×w×C`` float in ``[0, 1]`` (``C`` = 4, or 3 for an RGB VAE: opaque).
        layers: the layer count asked for; ``N == layers + 1`` means a leading composite frame,
            which is dropped.
        size: ``(H, W)`` of the input image.

    Returns:
        ``layers`` arrays of ``H×W×4`` float32.

    Raises:
        ValueError: ``N`` is neither ``layers`` nor ``layers + 1``.
    """
    f = np.asarray(frames, np.float32)
    if f.ndim != 4 or f.shape[3] not in (3, 4):
        raise ValueError(f"frames must be N×h×w×3|4, got shape {f.shape}")
    if len(f) == layers + 1:
        f = f[1:]
    elif len(f) != layers:
        raise ValueError(f"the pipeline returned {len(f)} frames for {layers} layers")
    if f.shape[3] == 3:
        f = np.concatenate([f, np.ones(f.shape[:3] + (1,), np.float32)], axis=3)
    return [resize_rgba(np.clip(x, 0.0, 1.0), size) for x in f]


def solve_background(image: np.ndarray, upper: list[np.ndarray], background: np.ndarray, min_transmission: float = 0.05) -> np.ndarray:
    """Background colour that makes ``[B, upper…]`` recompose ``image`` (clipped to ``[0, 1]``).

    With ``T = Π(1 − α_k)`` and ``P`` the premultiplied composite of the upper layers over black,
    the stack gives ``T·B + P``; so ``B = (C − P) / T`` where ``T ≥ min_transmission``, and the
    given ``background`` elsewhere.

    Args:
        image: ``H×W×3`` composite ``C``.
        upper: straight RGBA layers above the background, bottom → top.
        background: ``H×W×3`` estimate kept where the layers above are (nearly) opaque.
        min_transmission: smallest ``T`` at which ``B`` is solved.
    """
    t = np.ones(image.shape[:2] + (1,), np.float32)
    p = np.zeros_like(image, dtype=np.float32)
    for layer in upper:
        a = layer[..., 3:4]
        p = a * layer[..., :3] + (1.0 - a) * p
        t = t * (1.0 - a)
    solved = np.divide(image - p, t, out=np.zeros_like(p), where=t >= min_transmission)
    return np.clip(np.where(t >= min_transmission, solved, background), 0.0, 1.0).astype(np.float32)


def layers_to_stack(layers: list[np.ndarray], image: np.ndarray, consistent: bool = True) -> LayerStack:
    """Bottom → top RGBA layers → :class:`LayerStack` with an opaque background first.

    The bottom layer is composited over the input (where it is transparent the input shows);
    with ``consistent`` its colour is re-solved with :func:`solve_background`.
    """
    bottom = layers[0]
    a = bottom[..., 3:4]
    bg = a * bottom[..., :3] + (1.0 - a) * image
    if consistent:
        bg = solve_background(image, layers[1:], bg)
    out = [Layer.from_rgb(bg.astype(np.float32), name="background")]
    out += [Layer(x, name=f"layer_{i:02d}") for i, x in enumerate(layers[1:], 1)]
    return LayerStack(out)


class QwenLayeredDecomposer(MultiLayer):
    """Image → ``layers`` RGBA layers with diffusers' ``QwenImageLayeredPipeline``.

    Args:
        model: local folder of a diffusers ``QwenImageLayeredPipeline``, or a hub id that is in
            the local cache (nothing is downloaded).
        layers: layers asked of the model, background included (the model's ``layers``).
        resolution: bucket, 640 (recommended by the authors) or 1024.
        steps: denoising steps.
        true_cfg_scale: classifier-free guidance scale (``> 1`` with a negative prompt).
        negative_prompt: negative caption (``" "`` enables guidance).
        cfg_normalize: the model's CFG normalisation.
        prompt: caption of the whole image; ``None`` lets the model caption it (Qwen2.5-VL).
        use_en_prompt: automatic caption in English (else Chinese).
        dtype: ``"auto"`` (bf16 on CUDA, fp32 on CPU), ``"bfloat16"``, ``"float16"``, ``"float32"``.
        consistent: re-solve the background so the stack recomposes the input.
        device: torch device.

    Example:
        >>> backend = QwenLayeredDecomposer("/models/Qwen-Image-Layered", layers=6).to("cuda")
        >>> stack = backend(image)            # LayerStack, bottom → top, input size
    """

    name = "qwen_layered"

    def __init__(self, model: str = HUB_ID, layers: int = 4, resolution: int = 640, steps: int = 50,
                 true_cfg_scale: float = 4.0, negative_prompt: str = " ", cfg_normalize: bool = True,
                 prompt: str | None = None, use_en_prompt: bool = True, dtype: str = "auto",
                 consistent: bool = True, device: str = "cpu") -> None:
        from layerkit.errors import ConfigError

        if not 2 <= int(layers) <= 20:
            raise ConfigError(f"multilayer.layers must be in 2..20 (background included), got {layers}")
        bucket_size(64, 64, resolution)  # validates the bucket
        if dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ConfigError(f"multilayer.dtype must be auto, bfloat16, float16 or float32, got {dtype!r}")
        self.model, self.layers, self.resolution, self.steps = str(model), int(layers), int(resolution), int(steps)
        self.true_cfg_scale, self.negative_prompt, self.cfg_normalize = float(true_cfg_scale), negative_prompt, bool(cfg_normalize)
        self.prompt, self.use_en_prompt, self.dtype = prompt, bool(use_en_prompt), dtype
        self.consistent, self.device = bool(consistent), device
        self._pipe: Any = None

    def missing_weights(self) -> list[str]:
        """One line per missing model (empty when ``model`` is a local folder or cached)."""
        p = Path(self.model).expanduser()
        if p.is_dir():
            return [] if (p / "model_index.json").is_file() else [f"{self.model} has no model_index.json; it is not a diffusers pipeline folder"]
        if p.exists():
            return [f"model {self.model!r} is a file; give a diffusers pipeline folder or a hub id"]
        if self.model.startswith(("/", ".", "~")) or self.model.count("/") != 1:
            return [f"model folder {self.model!r} does not exist"]
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(self.model, "model_index.json")
        if isinstance(cached, str):
            return []
        return [f"model {self.model!r} is not in the local cache; download it where the hub is reachable "
                f"(huggingface-cli download {self.model} --local-dir DIR) and pass that DIR"]

    def to(self, device: str) -> QwenLayeredDecomposer:
        self.device = device
        if self._pipe is not None:
            self._pipe.to(device)
        return self

    def _torch_dtype(self) -> Any:
        import torch

        if self.dtype == "auto":
            return torch.bfloat16 if str(self.device).startswith("cuda") else torch.float32
        return getattr(torch, self.dtype)

    def load(self) -> Any:
        """Build the diffusers pipeline from ``model`` (local files only); cached after the first call.

        Raises:
            MissingModelError: the weights are not available locally.
        """
        if self._pipe is None:
            from layerkit.errors import MissingModelError

            missing = self.missing_weights()
            if missing:
                raise MissingModelError("multilayer: " + "; ".join(missing))
            from diffusers import QwenImageLayeredPipeline

            local = Path(self.model).expanduser()
            with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype; both work
                warnings.simplefilter("ignore", FutureWarning)
                pipe = QwenImageLayeredPipeline.from_pretrained(str(local) if local.is_dir() else self.model,
                                                                torch_dtype=self._torch_dtype(), local_files_only=True)
            pipe.set_progress_bar_config(**diffusers_bar_config())  # diffusers' own step bar, off with --quiet
            self._pipe = pipe.to(self.device)
        return self._pipe

    def __call__(self, image: np.ndarray, max_layers: int | None = None, text: str | None = None) -> LayerStack:
        """Decompose ``image``.

        Args:
            image: ``H×W×3`` float32 RGB in ``[0, 1]``.
            max_layers: cap on the layer count (background included).
            text: caption of the whole image (overrides ``prompt``; ``None``: auto caption).

        Returns:
            Stack of ``min(layers, max_layers)`` layers at the input size, bottom → top.
        """
        import torch
        from PIL import Image

        n = min(self.layers, max_layers or self.layers)
        pipe = self.load()
        h, w = image.shape[:2]
        pil = Image.fromarray(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8), "RGB").convert("RGBA")
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        out = pipe(image=pil, prompt=text if text is not None else self.prompt, negative_prompt=self.negative_prompt,
                   true_cfg_scale=self.true_cfg_scale, layers=n, num_inference_steps=self.steps, resolution=self.resolution,
                   cfg_normalize=self.cfg_normalize, use_en_prompt=self.use_en_prompt, generator=gen, output_type="np")
        frames = np.asarray(out.images[0], np.float32)
        return layers_to_stack(frames_to_layers(frames, n, (h, w)), image, self.consistent)
