"""Atomic writes: a file or folder appears complete under its final name, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from layerkit.errors import OutputError


def check_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate that ``path`` may be written.

    Args:
        path: file or folder to be created.
        overwrite: allow replacing an existing file or folder.

    Returns:
        The path as :class:`~pathlib.Path`.

    Raises:
        OutputError: if the path exists and ``overwrite`` is false, or its parent folder cannot
            be created or written.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputError(f"output {str(p)!r} already exists; pass --overwrite (overwrite=True) or choose another path")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {str(parent)!r}: {e.strerror or e}; choose a writable location") from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {str(parent)!r} is not writable; choose a writable location")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``path``.

    On any exception the temporary file or folder is removed and ``path`` is left untouched,
    so no partial output is ever visible under the final name.

    Args:
        path: final file or folder path.
        overwrite: replace an existing ``path``.
        directory: yield a (created, empty) temporary folder instead of a file path.
    """
    final = check_output(path, overwrite)
    parent = final.parent if str(final.parent) else Path(".")
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + final.suffix, dir=parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if final.exists():
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f".{final.name}.old")
            _remove(old)
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
            return
        if final.is_dir() != tmp.is_dir():
            _remove(final)
    os.replace(tmp, final)
    if not directory:
        os.chmod(final, 0o644)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()
