"""Where a learned stage's weights come from, and which device/dtype it runs in.

One helper for every pretrained backend (diffusers, transformers, segment-anything):

* a **model reference** is either a local folder (``/models/sam-vit-huge``, ``./vitmatte``,
  ``~/weights/sdxl``) or a Hugging Face hub id (``facebook/sam-vit-huge``);
* :func:`locate` finds it **without any network access**: a local folder is used as is, a hub id
  is looked up in the local Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``);
* :func:`missing_model` / :func:`missing_file` give the one-line reasons that
  :meth:`Pipeline.check_weights <layerkit.pipelines.decompose.Pipeline.check_weights>` collects.
  A hub id that is not cached is *not* missing unless the hub is switched off
  (``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``): like every Hugging Face tool, the stage
  downloads it into the cache on first use. The check itself never touches the network;
* :func:`pretrained_source` returns what to pass to ``from_pretrained``: the cached or local
  folder with ``local_files_only=True``, or the hub id — after :func:`announce_download` has
  printed the repository's weight size to stderr, before any byte of weights is fetched.

Example:
    >>> locate("facebook/sam-vit-huge")             # None unless it is in the HF cache
    >>> pretrained_source("/models/vitmatte-base")   # ('/models/vitmatte-base', {'local_files_only': True})
"""

from __future__ import annotations

import abc
import os
import pickle
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerkit.errors import MissingModelError
from layerkit.modules.base import Stage

if TYPE_CHECKING:
    import torch

#: Suffixes of weight files; a folder without any of them is not a usable model.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")
_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set (read at call time)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def downloads_allowed() -> bool:
    """True unless the hub is switched off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``), as in huggingface_hub."""
    return not is_offline()


def looks_like_path(ref: str) -> bool:
    """True for references that can only be a local path (absolute, ``./``, ``~``, or existing).

    A hub id is ``name`` or ``owner/name`` with no other slash.
    """
    if ref.startswith(("/", "./", "../", "~", ".\\")) or os.path.exists(os.path.expanduser(ref)):
        return True
    return ref.count("/") > 1 or "\\" in ref or ref.endswith((".pth", ".pt", ".safetensors", ".ckpt", ".bin"))


def has_weights(folder: Path) -> bool:
    """True if ``folder`` (or a subfolder, as in a diffusers pipeline) holds a weight file."""
    return any(p.suffix in WEIGHT_SUFFIXES for p in folder.rglob("*") if p.is_file())


def locate(ref: str, marker: str = "config.json") -> Path | None:
    """The local folder holding model ``ref``, or None; never touches the network.

    Args:
        ref: local folder or hub id (``owner/name``).
        marker: file that identifies the model folder (``config.json`` for transformers,
            ``model_index.json`` for a diffusers pipeline).

    Returns:
        The folder (a snapshot folder of the HF cache for a hub id) if it holds ``marker`` and at
        least one weight file, else None.
    """
    if looks_like_path(ref):
        folder = Path(os.path.expanduser(ref))
    else:
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(ref, marker)
        except ValueError:  # not a valid repo id
            return None
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parent
    if (folder / marker).is_file() and has_weights(folder):
        return folder
    return None


def missing_model(ref: str, key: str, marker: str = "config.json") -> list[str]:
    """Reasons (zero or one line) why model ``ref`` cannot be loaded here.

    Args:
        ref: local folder or hub id.
        key: the config key that names it (``"matter.model"``), quoted in the message.
        marker: see :func:`locate`.

    Returns:
        ``[]`` when it is available (or may be downloaded), else one line naming ``key``.
    """
    if locate(ref, marker) is not None:
        return []
    if looks_like_path(ref):
        folder = Path(os.path.expanduser(ref))
        what = "does not exist" if not folder.exists() else f"has no {marker} or no weight file"
        return [f"{key}={ref}: folder {what}; point {key} at a folder written by save_pretrained or 'hf download'"]
    if downloads_allowed():
        return []  # fetched into the cache on first use, its size announced first
    return [f"{ref} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it; "
            f"unset HF_HUB_OFFLINE to fetch it on first use, or set {key}=DIR, a folder made with "
            f"'hf download {ref} --local-dir DIR'"]


def missing_file(path: str, key: str, hint: str = "") -> list[str]:
    """Reasons (zero or one line) why the weight file ``path`` cannot be read.

    Args:
        path: checkpoint file (``~`` is expanded).
        key: config key naming it (``"segmenter.checkpoint"``).
        hint: where to get the file, appended to the message.
    """
    p = Path(os.path.expanduser(path))
    if p.is_file():
        return []
    return [f"{key}={path}: file not found; set {key} to a local checkpoint file" + (f" ({hint})" if hint else "")]


def pretrained_source(ref: str, key: str = "model", marker: str = "config.json") -> tuple[str, dict[str, Any]]:
    """What to give ``from_pretrained``: ``(folder_or_id, {"local_files_only": ...})``.

    Args:
        ref: local folder or hub id.
        key: config key naming it, for the error message.
        marker: see :func:`locate`.

    Raises:
        MissingModelError: the model is neither local nor downloadable (message of
            :func:`missing_model`).
    """
    folder = locate(ref, marker)
    if folder is not None:
        return str(folder), {"local_files_only": True}
    reasons = missing_model(ref, key, marker)
    if reasons:
        raise MissingModelError(reasons[0])
    announce_download(ref, key)
    return ref, {"local_files_only": False}


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


def download_size(siblings: list[Any]) -> tuple[int, int]:
    """``(weights, total)`` bytes of a hub repository's files.

    ``weights`` counts one weight format only — the ``.safetensors`` files when there are any (what
    ``from_pretrained`` fetches), else the other weight files — plus every non-weight file;
    ``total`` is the whole repository. ``siblings`` are ``huggingface_hub`` ``RepoSibling``
    objects (``rfilename``, ``size``).
    """
    sizes = [(str(getattr(f, "rfilename", "")), int(getattr(f, "size", 0) or 0)) for f in siblings]
    weights = [(n, b) for n, b in sizes if n.endswith(WEIGHT_SUFFIXES)]
    chosen = [(n, b) for n, b in weights if n.endswith(".safetensors")] or weights
    other = sum(b for n, b in sizes if not n.endswith(WEIGHT_SUFFIXES))
    return sum(b for _, b in chosen) + other, sum(b for _, b in sizes)


def announce_download(ref: str, key: str = "model") -> tuple[int, int]:
    """Print to stderr how much model ``ref`` will download, before it is downloaded.

    Asks the hub for the repository's file sizes (``HfApi.model_info(files_metadata=True)``).

    Returns:
        ``(weights, total)`` bytes (see :func:`download_size`).

    Raises:
        MissingModelError: the hub cannot be reached or does not know ``ref`` (one line, naming
            ``key`` and the offline alternatives).
    """
    from huggingface_hub import HfApi, constants

    try:
        info = HfApi().model_info(ref, files_metadata=True, timeout=20)
    except Exception as e:  # noqa: BLE001 - any hub failure (network, 404, auth) is one clear line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MissingModelError(f"{key}={ref} is not in the local Hugging Face cache and the hub could not be asked "
                                f"for it ({msg}); set {key}=DIR, a folder made with 'hf download {ref} --local-dir DIR', "
                                "or copy a Hugging Face cache here") from None
    weights, total = download_size(list(info.siblings or []))
    print(f"layerkit: downloading {ref} for {key}: about {_human(weights)} (repository {_human(total)}) into "
          f"{constants.HF_HUB_CACHE}; set HF_HUB_OFFLINE=1 to forbid downloads", file=sys.stderr, flush=True)
    return weights, total


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda"`` if available, else ``"mps"`` if available, else ``"cpu"``; others unchanged."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "half": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """Torch dtype for a stage's weights.

    Args:
        dtype: ``"auto"`` (bfloat16 on a CUDA device that supports it, float16 on other CUDA
            devices, float32 elsewhere), or ``float32|fp32|float16|fp16|bfloat16|bf16``.
        device: the resolved device; half precision on CPU is refused (too slow or unsupported).

    Raises:
        ConfigError: unknown dtype name, or half precision on CPU.
    """
    import torch

    from layerkit.errors import ConfigError

    name = dtype.strip().lower()
    if name == "auto":
        if device.startswith("cuda") and torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if name not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16")
    out = getattr(torch, _DTYPES[name])
    if out != torch.float32 and device == "cpu":
        raise ConfigError(f"dtype {dtype!r} is not supported on CPU; use dtype=auto or float32, or a CUDA device")
    return out


class PretrainedStage(Stage, abc.ABC):
    """Base of the learned stages: a model reference, lazy loading, device and dtype.

    A subclass sets :attr:`key` (the config key naming the model, e.g. ``"matter.model"``),
    :attr:`marker`, and implements :meth:`_load`. Nothing is read from disk until
    :attr:`loaded` is first used; :meth:`to` before that only records the device.

    Attributes:
        model: local folder or hub id.
        dtype: ``"auto"`` or a dtype name (see :func:`resolve_dtype`).
        device: the resolved torch device string.
    """

    key: str = "model"
    marker: str = "config.json"

    def __init__(self, model: str, dtype: str = "auto") -> None:
        self.model = str(model)
        self.dtype = dtype
        self.device = "cpu"
        self._loaded: Any = None

    def missing_weights(self) -> list[str]:
        """One line per model that cannot be found offline (``[]`` when all are there)."""
        return missing_model(self.model, self.key, self.marker)

    def folder_missing(self, name: str, missing_files: Any, train: str, export: str) -> list[str]:
        """:meth:`missing_weights` of a stage whose model is a folder of several parts (FBDD, RefLayer).

        Args:
            name: the model's name in messages.
            missing_files: ``folder → list of missing part files``.
            train: the command that makes such a folder.
            export: where that command writes it.
        """
        if not self.model:
            return [f"{self.key}: no {name} model set; train one with '{train}' and set {self.key}={export} "
                    "(or a hub id with the same layout)"]
        reasons = PretrainedStage.missing_weights(self)
        folder = locate(self.model, self.marker)
        if reasons or folder is None:
            return reasons
        missing = missing_files(folder)
        if missing:
            return [f"{self.key}={self.model}: incomplete {name} model folder, missing {', '.join(missing)}; "
                    f"use the folder written by '{train}' ({export})"]
        return []

    def checked_source(self) -> tuple[str, dict[str, Any]]:
        """:meth:`_source` once :meth:`missing_weights` finds nothing missing (else one error naming all)."""
        problems = self.missing_weights()
        if problems:
            raise MissingModelError("; ".join(problems))
        return PretrainedStage._source(self)

    @property
    def torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype, self.device)

    def to(self, device: str) -> PretrainedStage:
        """Run on ``device`` (``"auto"`` allowed); moves the model if it is already loaded.

        Raises:
            ConfigError: the configured dtype does not suit the device.
        """
        self.device = resolve_device(device)
        dtype = self.torch_dtype  # validate now, not at first use
        if self._loaded is not None:
            self._place(self._loaded, dtype)
        return self

    @property
    def loaded(self) -> Any:
        """The loaded model (whatever :meth:`_load` returns), loading it on first use.

        Raises:
            MissingModelError: the weights are missing or cannot be read.
        """
        if self._loaded is None:
            src, kwargs = self._source()
            try:
                obj = self._load(src, kwargs, self.torch_dtype)
            except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise MissingModelError(f"cannot load {self.key}={self.model}: {msg}") from None
            self._place(obj, self.torch_dtype)
            self._loaded = obj
        return self._loaded

    def _source(self) -> tuple[str, dict[str, Any]]:
        return pretrained_source(self.model, self.key, self.marker)

    @abc.abstractmethod
    def _load(self, source: str, kwargs: dict[str, Any], dtype: torch.dtype) -> Any:
        """Build and load the model from ``source`` (a folder or hub id) with ``from_pretrained`` ``kwargs``."""

    def _place(self, obj: Any, dtype: torch.dtype) -> None:
        """Move the loaded object to :attr:`device` and ``dtype`` (every ``nn.Module`` value of a dict)."""
        import torch

        items = obj.values() if isinstance(obj, dict) else [obj]
        for item in items:
            if isinstance(item, torch.nn.Module):
                item.to(device=self.device, dtype=dtype).eval()
