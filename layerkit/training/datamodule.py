"""``CompositeDataModule``: composites made on the fly from a folder of RGBA foregrounds and a
folder of background photos (see :mod:`layerkit.training.synth` for how one sample is drawn).

Foreground and background files are split into train / validation sets by a seeded
permutation, so validation objects and photos are never seen in training. Validation samples
are drawn from fixed seeds (the same every epoch); training samples from fresh randomness.

A batch is a dict of float32 tensors, ``B×C×S×S`` in ``[0, 1]``: ``image`` (C = 3), ``alpha``
(C = 1), ``fg``, ``bg`` and, with a ``hat`` source, ``fg_hat`` and ``bg_hat`` (C = 3).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from layerkit.errors import DataError
from layerkit.training.synth import HAT_SOURCES, SynthParams, make_sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def list_images(folder: str | os.PathLike, what: str) -> list[Path]:
    """Sorted image files of ``folder``.

    Raises:
        DataError: the folder is missing or holds no image.
    """
    if folder is None or not Path(folder).is_dir():
        raise DataError(f"{what} folder {str(folder)!r} does not exist; set data.{what}_dir=FOLDER")
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{what} folder {str(folder)!r} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return files


def split_files(files: Sequence[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Seeded train / validation split; validation gets ``round(fraction·n)`` files (at least
    one, and never all: with a single file both sets share it)."""
    n = len(files)
    if n == 1:
        return list(files), list(files)
    k = min(n - 1, max(1, round(fraction * n)))
    order = np.random.default_rng(seed).permutation(n)
    val = sorted(files[i] for i in order[:k])
    return [f for f in files if f not in val], val


class CompositeDataset(Dataset):
    """``length`` composites from ``fg_files`` × ``bg_files``.

    Args:
        fg_files: RGBA foreground layers (straight alpha).
        bg_files: background photos.
        length: samples per epoch.
        params: how a sample is drawn.
        seed: base seed.
        fixed: True → sample ``i`` is the same every time (validation); False → fresh randomness
            per access (the worker's torch seed changes every epoch).
    """

    def __init__(self, fg_files: Sequence[Path], bg_files: Sequence[Path], length: int, params: SynthParams,
                 seed: int = 0, fixed: bool = False) -> None:
        self.fg_files, self.bg_files = list(fg_files), list(bg_files)
        self.length, self.params, self.seed, self.fixed = int(length), params, int(seed), fixed
        self._cache: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def _load(self, path: Path, mode: str) -> np.ndarray:
        if path not in self._cache:
            from PIL import Image

            try:
                with Image.open(path) as im:
                    self._cache[path] = np.asarray(im.convert(mode))
            except OSError as e:
                raise DataError(f"cannot read training image {str(path)!r}: {e}") from None
        return self._cache[path].astype(np.float32) / 255.0

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self.fixed:
            rng = np.random.default_rng([self.seed, 1, i])
        else:
            rng = np.random.default_rng([self.seed, 0, i, int(torch.randint(0, 2 ** 31 - 1, ()).item())])
        fg = self._load(self.fg_files[int(rng.integers(len(self.fg_files)))], "RGBA")
        bg = self._load(self.bg_files[int(rng.integers(len(self.bg_files)))], "RGB")
        sample = make_sample(fg, bg, rng, self.params)
        return {k: torch.from_numpy(np.ascontiguousarray(v[None] if v.ndim == 2 else v.transpose(2, 0, 1)))
                for k, v in sample.items()}


class CompositeDataModule(L.LightningDataModule):
    """Train / validation composites from two folders.

    Args:
        fg_dir: folder of RGBA foreground layers (``*.png``, straight alpha).
        bg_dir: folder of background photos.
        size: side of the square samples, pixels.
        batch_size: samples per batch.
        num_workers: data worker processes (0 = in the training process).
        train_samples: training samples per epoch.
        val_samples: validation samples (fixed seeds).
        val_fraction: share of foreground and of background files held out for validation.
        seed: seed of the split and of the validation samples.
        hat: source of ``F̂``/``B̂``: ``none``, ``classical`` or ``degrade``.
        hat_inpaint: inpainting method of the classical decomposer (``hat: classical``); None =
            its default (the ``classical`` pipeline's); set it to the pipeline the refiner runs in.
        fg_scale: ``[min, max]`` foreground scale relative to its file.
        bg_scale: ``[min, max]`` background scale relative to its file.
        band_prob: probability that a window is centred on the soft band of the matte.
        jitter: colour jitter strength (0 = off).
        fill_foreground: extend foreground colours beyond ``α = 0`` (for latent targets).
    """

    def __init__(self, fg_dir: str | None = None, bg_dir: str | None = None, size: int = 128, batch_size: int = 8,
                 num_workers: int = 1, train_samples: int = 2000, val_samples: int = 32, val_fraction: float = 0.15,
                 seed: int = 0, hat: str = "classical", hat_inpaint: str | None = None, fg_scale: Sequence[float] = (0.5, 1.5),
                 bg_scale: Sequence[float] = (0.5, 1.0), band_prob: float = 0.7, jitter: float = 0.1,
                 fill_foreground: bool = False) -> None:
        super().__init__()
        if hat not in HAT_SOURCES:
            raise DataError(f"data.hat must be one of {', '.join(HAT_SOURCES)}, got {hat!r}")
        if train_samples < batch_size:
            raise DataError(f"data.train_samples ({train_samples}) must be >= data.batch_size ({batch_size})")
        if size < 16 or size % 8:
            raise DataError(f"data.size must be a multiple of 8 and >= 16, got {size}")
        self.save_hyperparameters()
        self.params = SynthParams(size=size, fg_scale=tuple(fg_scale), bg_scale=tuple(bg_scale),  # type: ignore[arg-type]
                                  band_prob=band_prob, jitter=jitter, hat=hat, hat_inpaint=hat_inpaint,
                                  fill_foreground=fill_foreground)
        self.split: dict[str, list[str]] = {}
        self.train_set: CompositeDataset | None = None
        self.val_set: CompositeDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """List the files and split them (seeded)."""
        hp = self.hparams
        fg_train, fg_val = split_files(list_images(hp.fg_dir, "fg"), hp.val_fraction, hp.seed)
        bg_train, bg_val = split_files(list_images(hp.bg_dir, "bg"), hp.val_fraction, hp.seed + 1)
        self.split = {"fg_train": [p.name for p in fg_train], "fg_val": [p.name for p in fg_val],
                      "bg_train": [p.name for p in bg_train], "bg_val": [p.name for p in bg_val]}
        self.train_set = CompositeDataset(fg_train, bg_train, hp.train_samples, self.params, hp.seed)
        self.val_set = CompositeDataset(fg_val, bg_val, hp.val_samples, self.params, hp.seed, fixed=True)

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        return make_loader(ds, int(self.hparams.batch_size), int(self.hparams.num_workers), shuffle)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        return self._loader(self.val_set, False)

    def state_dict(self) -> dict[str, Any]:
        return {"split": self.split}


def make_loader(ds: Dataset, batch_size: int, num_workers: int, shuffle: bool) -> DataLoader:
    """The training data loaders' ``DataLoader``: shuffled training batches drop the last partial
    one; workers (if any) are spawned, kept alive between epochs and held to one thread each."""
    w = num_workers
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=w, persistent_workers=w > 0,
                      worker_init_fn=_worker_init if w > 0 else None, drop_last=shuffle,
                      multiprocessing_context="spawn" if w > 0 else None)


def _worker_init(worker_id: int) -> None:
    """One thread per worker: the data work is numpy/OpenCV and cores are few."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
