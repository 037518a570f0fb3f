"""What layerkit wrote: the manifest of an output folder, and the rule ``--overwrite`` follows.

Every report or data-set folder layerkit writes carries a manifest, :data:`MANIFEST`
(``.layerkit-output``, JSON: ``{"writer": "layerkit", "files": [...]}``), listing every file it
wrote there, relative, ``/``-separated; a layer folder is described by its ``layers.json``.
``--overwrite`` (``overwrite=True``) replaces an existing folder only when it is layerkit's own
output and holds nothing else:

* a folder with a manifest whose files are all listed in it (plus the manifest itself);
* a layer folder: its ``layers.json`` carries the layerkit format tag and the folder holds only
  ``layers.json`` and the files it names;
* an empty folder.

Anything else (a user's photo folder, a layerkit output to which a user added a file) is refused
with one line naming what was found, so ``--overwrite`` can never delete a user's files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from layerkit.errors import OutputError

#: Name of the manifest file layerkit writes into every output folder.
MANIFEST = ".layerkit-output"
#: ``format`` value of a ``layers.json`` written by layerkit (see :mod:`layerkit.io.layers`).
LAYERS_FORMAT_TAG = "layerkit.layers/1"
_MANIFEST_MAX_BYTES = 64 * 1024 * 1024


def folder_files(root: Path) -> list[str]:
    """Every entry under ``root`` that is not a folder (files, links, sockets …), relative, sorted.

    Symbolic links are listed, never followed, so a link to a user's folder counts as one entry.
    """
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [*filenames, *links]:
            out.append((rel / name).as_posix())
    return sorted(out)


def write_manifest(root: Path) -> None:
    """Write :data:`MANIFEST` into ``root`` listing every file in it (call when the folder is complete)."""
    files = [f for f in folder_files(root) if f != MANIFEST]
    (root / MANIFEST).write_text(json.dumps({"writer": "layerkit", "files": files}, indent=0))


def _small_json(p: Path) -> Any:
    """The JSON document of the regular file ``p`` (not a link, at most the manifest size), else None."""
    if not p.is_file() or p.is_symlink() or p.stat().st_size > _MANIFEST_MAX_BYTES:
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _manifest_files(root: Path) -> set[str] | None:
    doc = _small_json(root / MANIFEST)
    if not isinstance(doc, dict) or doc.get("writer") != "layerkit" or not isinstance(doc.get("files"), list):
        return None
    return {f for f in doc["files"] if isinstance(f, str)} | {MANIFEST}


def _legacy_layer_files(root: Path) -> set[str] | None:
    """Files a layerkit layer folder is allowed to hold, from its ``layers.json``."""
    doc = _small_json(root / "layers.json")
    if not isinstance(doc, dict) or doc.get("format") != LAYERS_FORMAT_TAG or not isinstance(doc.get("layers"), list):
        return None
    files = {"layers.json"}
    for m in doc["layers"]:
        if isinstance(m, dict):
            files |= {m[k] for k in ("file", "alpha_file") if isinstance(m.get(k), str)}
    return files


def check_replaceable(path: Path) -> None:
    """Raise unless the existing folder ``path`` may be replaced (see the module docstring).

    Args:
        path: an existing folder (not a symbolic link).

    Raises:
        OutputError: the folder is not layerkit's output, or holds files layerkit did not write.
    """
    try:
        with os.scandir(path) as it:
            top = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in it)
        if not top:
            return
        allowed = _manifest_files(path)
        if allowed is None:
            allowed = _legacy_layer_files(path)
        if allowed is None:
            raise OutputError(
                f"output folder {str(path)!r} was not written by layerkit (it holds {_listing(top)}); "
                "--overwrite replaces only layerkit's own outputs: choose a new path or remove the folder yourself")
        present = folder_files(path)
    except OSError as e:
        raise OutputError(f"cannot inspect output folder {str(path)!r}: {e.strerror or e}; choose another path") from None
    extra = [f for f in present if f not in allowed]
    if extra:
        raise OutputError(
            f"output folder {str(path)!r} holds files layerkit did not write ({_listing(extra)}); "
            "--overwrite would delete them: move them away or choose a new path")


def _listing(names: list[str], most: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
