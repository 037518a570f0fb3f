"""Shared helpers of the batch tests: a folder of small composites with prompts, and output checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from conftest import make_composite
from PIL import Image

#: ``make_collection``'s corrupt image id
BAD = "bad"


def make_collection(root: Path, n: int = 4, size: tuple[int, int] = (48, 64), corrupt: bool = True) -> tuple[Path, Path]:
    """``root/imgs/imK.png`` (a soft disc over a texture, K = 0..n-1) + ``root/prompts.jsonl`` (one box
    each); with ``corrupt`` also ``bad.png``, a PNG signature followed by junk. Returns (folder, prompts)."""
    imgs = root / "imgs"
    imgs.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        c = make_composite(*size, seed=i)
        Image.fromarray((c["image"] * 255 + 0.5).astype(np.uint8)).save(imgs / f"im{i}.png")
        lines.append({"image": f"im{i}.png", "objects": [{"box": c["box"].tolist(), "name": "disc"}]})
    if corrupt:
        (imgs / f"{BAD}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
        lines.append({"image": f"{BAD}.png", "objects": [{"box": [1, 1, 5, 5]}]})
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return imgs, prompts


def index_lines(out: Path) -> list[dict[str, Any]]:
    """Records of ``OUT/index.jsonl`` (every line must parse: the file is written atomically)."""
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def partials(out: Path) -> list[str]:
    """Leftovers of interrupted atomic writes (temporary siblings)."""
    return sorted(p.name for p in out.rglob("*") if ".tmp" in p.name or p.name.endswith(".old"))


def check_complete_outputs(out: Path) -> None:
    """Every output folder under its final name is whole: its layers.json names files that exist."""
    for d in out.iterdir():
        if d.is_dir() and not d.name.startswith("."):
            doc = json.loads((d / "layers.json").read_text())
            for m in doc["layers"]:
                assert (d / m["file"]).is_file(), f"{d}/{m['file']} missing"


def strip_timing(rec: dict[str, Any]) -> dict[str, Any]:
    """A record without what differs between runs of the same inputs (time, worker process)."""
    return {k: v for k, v in rec.items() if k not in ("seconds", "worker")}


def read_output(out: Path, rec: dict[str, Any]) -> list[np.ndarray]:
    """The decoded pixels of every layer file of a record."""
    return [np.asarray(Image.open(out / layer["file"])) for layer in rec["layers"]]
