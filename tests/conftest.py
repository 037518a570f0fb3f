"""Shared fixtures. No test touches the network: the hub is switched off before anything imports it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def make_composite(h: int = 96, w: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    """A small composite with exact ground truth: a soft-edged disc over a textured background.

    Returns a dict with ``image`` (H×W×3), ``alpha`` (H×W), ``fg`` (H×W×3), ``bg`` (H×W×3) and
    ``box`` (xyxy of alpha > 0.1), all float32 in [0, 1].
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    bg = np.stack([0.2 + 0.3 * (xx / w), 0.5 + 0.2 * np.sin(yy / 7.0), 0.3 + 0.1 * np.cos(xx / 5.0)], axis=2)
    bg = np.clip(bg + rng.normal(0, 0.02, bg.shape), 0, 1).astype(np.float32)
    cy, cx, r = h * 0.5, w * 0.5, min(h, w) * 0.28
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    alpha = np.clip((r - d) / 3.0 + 0.5, 0, 1).astype(np.float32)
    fg = np.stack([0.9 - 0.2 * (yy / h), 0.15 + 0.1 * (xx / w), 0.1 + 0.0 * xx], axis=2).astype(np.float32)
    image = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.float32)
    ys, xs = np.nonzero(alpha > 0.1)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    return {"image": image, "alpha": alpha, "fg": fg, "bg": bg, "box": box}


@pytest.fixture
def composite() -> dict[str, np.ndarray]:
    return make_composite()


@pytest.fixture
def image_file(tmp_path, composite) -> str:
    from PIL import Image

    p = tmp_path / "photo.png"
    Image.fromarray((composite["image"] * 255 + 0.5).astype(np.uint8)).save(p)
    return str(p)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch intra-op thread in tests: on a small shared CPU two spinning threads are far slower
    (a one-batch training test took 204 s with two threads under load, 1.2 s with one)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` (a script, not a package) as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"layerkit_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module
