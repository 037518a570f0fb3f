"""What a batch run has to do: one :class:`Job` per input image, and where its output goes.

Sources (``layerkit batch SOURCE``):

* a folder: its images matching ``pattern`` (default ``*``; ``**/*`` recurses);
* a glob of images (``'photos/*.jpg'``);
* one or more JSON-lines *shards* (a ``.jsonl`` path or glob such as ``'shards/*.jsonl'``): one
  record per line, ``{"image": PATH, "objects": [...], "order": ...}``, ``PATH`` relative to the
  shard's folder (or absolute).

Prompts (``--prompts prompts.jsonl``, or inside shards) use the object schema of ``layerkit layers
--prompts`` (``box``/``boxes``, ``point``/``points``, ``labels``, ``mask``, ``text``, ``name``);
they are parsed per image by :func:`layerkit.cli.layers.prompts_from_records` in the worker.

An image's id is its path relative to the source folder (shard folder), without suffix, with
``/`` written ``__``; ids must be unique within a run.
"""

from __future__ import annotations

import glob
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from layerkit.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
FORMATS = {"folder": "", "psd": ".psd", "ora": ".ora"}


@dataclass
class Job:
    """One image to decompose.

    Attributes:
        id: unique id (see the module docstring); names the output.
        image: absolute path of the image.
        objects: object records (``layerkit layers --prompts`` schema), ``None`` when the image has
            none (then it needs ``--auto``).
        order: ``"auto"``, ``"given"`` or indices front-most first; ``None`` = the run's default.
    """

    id: str
    image: str
    objects: list[dict[str, Any]] | None = None
    order: str | list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_path(out: str | Path, job_id: str, fmt: str) -> Path:
    """Where the stack of ``job_id`` goes: ``OUT/ID`` (folder), ``OUT/ID.psd`` or ``OUT/ID.ora``."""
    if fmt not in FORMATS:
        raise DataError(f"--format {fmt!r} is not valid; use one of {sorted(FORMATS)}")
    return Path(out) / f"{job_id}{FORMATS[fmt]}"


def _abs(p: Path) -> Path:
    """Absolute path without resolving symlinks (a linked image keeps the id of its link)."""
    return Path(os.path.abspath(p))


def _image_id(path: Path, root: Path) -> str:
    try:
        rel = _abs(path).relative_to(_abs(root))
    except ValueError:  # an absolute path outside the source folder: its name
        rel = Path(path.name)
    return str(rel.with_suffix("")).replace("\\", "/").replace("/", "__")


def _check_objects(objects: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(objects, dict) and "objects" in objects:
        objects = objects["objects"]
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise DataError(f"{where}: 'objects' must be a list of object records such as "
                        "[{\"box\": [x0, y0, x1, y1]}, {\"points\": [[x, y]], \"labels\": [1]}]")
    return objects


def _resolve_masks(objects: list[dict[str, Any]], base: Path) -> list[dict[str, Any]]:
    """Mask paths in records are relative to the file that holds them (as in ``layers --prompts``)."""
    out = []
    for o in objects:
        o = dict(o)
        if isinstance(o.get("mask"), str) and not Path(o["mask"]).is_absolute():
            o["mask"] = str((base / o["mask"]).resolve())
        out.append(o)
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file (blank lines skipped), each checked to have ``image``.

    Raises:
        DataError: unreadable file, a line that is not a JSON object with ``image``, bad ``objects``.
    """
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise DataError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path}:{n} is not valid JSON ({e}); expected {{\"image\": ..., \"objects\": [...]}}") from None
        if not isinstance(rec, dict) or "image" not in rec:
            raise DataError(f"{path}:{n} has no 'image' key; expected {{\"image\": ..., \"objects\": [...]}}")
        if "objects" in rec:
            rec["objects"] = _resolve_masks(_check_objects(rec["objects"], f"{path}:{n}"), path.parent)
        records.append(rec)
    return records


def _glob_root(source: str) -> Path:
    """The folder part of a glob before its first wildcard (``photos/*/a*.jpg`` → ``photos``)."""
    parts = Path(source).parts
    head = [p for p in parts[:next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts) - 1)]]
    return Path(*head) if head else Path(".")


def _expand(source: str) -> list[Path]:
    hits = sorted(Path(p) for p in glob.glob(source, recursive=True))
    if not hits and Path(source).exists():
        hits = [Path(source)]
    return hits


def list_jobs(source: str, prompts: str | None = None, pattern: str = "*", limit: int | None = None) -> list[Job]:
    """The jobs of a run, sorted by id.

    Args:
        source: folder, image glob, or ``.jsonl`` shard path/glob (see the module docstring).
        prompts: JSON-lines prompt file for folder/glob sources; records are matched to images by
            their ``image`` field: the path relative to the folder, the file name, or the id.
        pattern: glob inside a folder source.
        limit: keep the first ``limit`` jobs (by id).

    Raises:
        DataError: nothing matches, duplicate ids, bad records, prompts for unknown images.
    """
    hits = _expand(source)
    if not hits:
        raise DataError(f"batch source {source!r} matches nothing; give a folder of images, an image glob or .jsonl shards")
    jobs: list[Job] = []
    if all(h.is_file() and h.suffix.lower() == ".jsonl" for h in hits):
        if prompts:
            raise DataError("--prompts is for folder sources; shard records carry their own 'objects'")
        for shard in hits:
            for rec in read_jsonl(shard):
                img = Path(rec["image"])
                img = img if img.is_absolute() else shard.parent / img
                jobs.append(Job(_image_id(img, shard.parent), str(_abs(img)), rec.get("objects"), rec.get("order"),
                                {k: v for k, v in rec.items() if k not in ("image", "objects", "order")}))
    else:
        if len(hits) == 1 and hits[0].is_dir():
            root = hits[0]
            files = sorted(f for f in root.glob(pattern) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            root = _glob_root(source)
            files = [h for h in hits if h.is_file() and h.suffix.lower() in IMAGE_SUFFIXES]
        table = {str(r["image"]): r for r in read_jsonl(Path(prompts))} if prompts else {}
        used: set[str] = set()
        for f in files:
            jid = _image_id(f, root)
            rel = str(_abs(f).relative_to(_abs(root)))
            key = next((k for k in (rel, f.name, jid) if k in table), None)
            rec = table.get(key) if key else None
            if key:
                used.add(key)
            jobs.append(Job(jid, str(_abs(f)), rec.get("objects") if rec else None, rec.get("order") if rec else None))
        unknown = sorted(set(table) - used)
        if unknown:
            raise DataError(f"--prompts names {len(unknown)} image(s) not in {source!r} (e.g. {unknown[:3]}); "
                            "use paths relative to the folder or file names")
    if not jobs:
        raise DataError(f"batch source {source!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    dup = sorted(i for i, n in Counter(j.id for j in jobs).items() if n > 1)
    if dup:
        raise DataError(f"image ids are not unique ({dup[:5]}); give each image a distinct path")
    return sorted(jobs, key=lambda j: j.id)[:limit]


def jobs_from_dicts(items: Sequence[dict[str, Any]]) -> list[Job]:
    return [Job(**d) for d in items]
