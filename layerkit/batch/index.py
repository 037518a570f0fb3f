"""The run's index: ``OUT/index.jsonl`` (one record per image, sorted by id), rewritten atomically.

Rewriting a large index after every image would cost O(images) per image, so records are also
appended to a journal (``OUT/index.journal.jsonl``, one flushed line per image) and the index is
rewritten every ``every`` seconds and at the end, after which the journal is emptied. A reader (or
``--resume``) takes the index, then the journal's complete lines (a line torn by a kill is
dropped); the last record of an id wins. So a record is never lost once its line is flushed, and
``index.jsonl`` is always a complete, consistent file.

``OUT/.lock`` (``fcntl.flock``) keeps two runs off one output folder; the kernel drops it when
the holder dies, SIGKILL included.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from layerkit.batch.jobs import output_path
from layerkit.errors import OutputError
from layerkit.io.atomic import atomic_path

INDEX = "index.jsonl"
JOURNAL = "index.journal.jsonl"
SETTINGS = "batch.json"
SUMMARY = "summary.json"
LOCK = ".lock"


def read_records(out: str | Path) -> dict[str, dict[str, Any]]:
    """``{id: record}`` from ``OUT/index.jsonl`` and its journal (torn lines skipped)."""
    out = Path(out)
    records: dict[str, dict[str, Any]] = {}
    for name in (INDEX, JOURNAL):
        p = out / name
        if not p.exists():
            continue
        for line in p.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # the last line of a journal cut by a kill
            if isinstance(rec, dict) and "id" in rec:
                records[rec["id"]] = rec
    return records


def remove_partials(out: str | Path) -> list[str]:
    """Delete what interrupted atomic writes left in ``OUT`` (``.NAME.lk…tmp[.suffix]`` and their
    ``….old``, see :mod:`layerkit.io.atomic`).

    Unlike :func:`layerkit.io.atomic.sweep_stale` this removes every such entry, of any host and pid:
    on a cluster the workers of other nodes write here too. Only the run holding the lock calls this,
    before its workers start and after they are stopped, so no live writer owns these entries.
    """
    removed = []
    for p in Path(out).iterdir():
        n = p.name
        if n.startswith(".") and (".tmp" in n or n.endswith(".old")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
            removed.append(n)
    return sorted(removed)


class BatchIndex:
    """Index of one output folder, held by one run (lock taken on construction).

    Args:
        out: output folder (created).
        every: seconds between atomic index rewrites.

    Raises:
        OutputError: another run holds the folder.
    """

    def __init__(self, out: str | Path, every: float = 5.0) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.out / LOCK, "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise OutputError(f"another layerkit batch run is using {str(self.out)!r}; "
                              "wait for it or choose another -o") from None
        self.every = every
        self.records = read_records(self.out)
        self._journal = open(self.out / JOURNAL, "a")
        self._last = time.monotonic()
        self._dirty = False

    def complete(self, job_id: str, fmt: str) -> bool:
        """Whether ``job_id`` is done: an ``ok`` record and its output on disk (written atomically,
        so present means whole)."""
        rec = self.records.get(job_id)
        return bool(rec and rec.get("status") == "ok" and output_path(self.out, job_id, fmt).exists())

    def add(self, record: dict[str, Any]) -> None:
        """Record one image (journal line now, index rewrite when ``every`` seconds have passed)."""
        self.records[record["id"]] = record
        self._journal.write(json.dumps(record) + "\n")
        self._journal.flush()
        self._dirty = True
        if time.monotonic() - self._last >= self.every:
            self.flush()

    def flush(self) -> None:
        """Rewrite ``index.jsonl`` atomically with every record, then empty the journal."""
        with atomic_path(self.out / INDEX, overwrite=True) as tmp:
            with open(tmp, "w") as f:
                for k in sorted(self.records):
                    f.write(json.dumps(self.records[k]) + "\n")
        self._journal.close()
        self._journal = open(self.out / JOURNAL, "w")  # the index now holds every journal line
        self._last = time.monotonic()
        self._dirty = False

    def write_json(self, name: str, doc: dict[str, Any]) -> None:
        with atomic_path(self.out / name, overwrite=True) as tmp:
            tmp.write_text(json.dumps(doc, indent=1) + "\n")

    def close(self) -> None:
        if not self._journal.closed:
            self.flush()
            self._journal.close()
            (self.out / JOURNAL).unlink(missing_ok=True)
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records.values())


def check_settings(out: Path, settings: dict[str, Any], resume: bool) -> None:
    """A fresh run needs an empty (or new) folder; ``--resume`` needs the same output settings
    (``--resume`` on a new folder starts the run).

    Raises:
        OutputError: an existing run without ``--resume``, a foreign folder, or changed settings.
    """
    path = out / SETTINGS
    if path.exists():
        old = json.loads(path.read_text())
        if not resume:
            raise OutputError(f"{str(out)!r} holds a batch run; pass --resume to continue it or choose another -o")
        changed = sorted(k for k in settings if old.get(k) != settings[k] and k != "out")
        if changed:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {settings[k]!r}" for k in changed)
            raise OutputError(f"--resume with other settings than the run in {str(out)!r} ({diff}); pass the same options")
    elif out.exists() and any(p.name != LOCK for p in out.iterdir()):
        raise OutputError(f"output folder {str(out)!r} exists and is not a layerkit batch output; choose another -o")
    os.makedirs(out, exist_ok=True)
