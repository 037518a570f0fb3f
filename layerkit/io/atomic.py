"""Atomic writes: a file or folder appears complete under its final name, or not at all.

How (see also ``docs/guarantees.md``):

* The output is written to a temporary sibling named ``.NAME.lk<host>-<pid>-<random>.tmp[.suffix]``
  (``NAME`` shortened so the temporary name fits the file system's 255-byte limit).
* It is then moved onto the final name in ONE atomic step: ``rename(2)`` for a new name, and for an
  existing folder Linux's ``renameat2(RENAME_EXCHANGE)``, which swaps the two folders at once, so
  the final name never stops existing. The old content, now under the temporary name, is deleted
  afterwards. Where ``renameat2`` is unavailable (not Linux, or a file system without it) the swap
  takes two renames, made under an ``fcntl`` lock of the parent folder.
* Concurrent writers of one output serialise on that lock: the last one wins, none fails.
* A run killed before it could clean up leaves its temporary entry behind; the next write into the
  same folder removes the temporary entries of dead processes of this host (the pid is in the name).
* ``--overwrite`` replaces an existing folder only when :func:`layerkit.io.owned.check_replaceable`
  recognises it as layerkit's own output (by its manifest, or a layer folder by its layers.json).
* The result gets the usual permissions (``0666``/``0777`` minus the umask), not ``mkstemp``'s 0600/0700.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the atomic rename still holds
    fcntl = None  # type: ignore[assignment]

from layerkit.errors import LayerkitError, OutputError
from layerkit.io.owned import check_replaceable, write_manifest

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TMP_RE = re.compile(r"^\..*\.lk(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[A-Za-z0-9_]{8}\.tmp")
_NAME_MAX = 255
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)


def check_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate that ``path`` may be written (call it before long work to fail early).

    Args:
        path: file or folder to be created.
        overwrite: allow replacing an existing file, or a folder that layerkit wrote.

    Returns:
        The path as :class:`~pathlib.Path`.

    Raises:
        OutputError: the path exists and ``overwrite`` is false; it is a folder layerkit did not
            write; it names no new entry (``.``, ``..``, ``/``); its name is too long; or its
            parent folder cannot be created or written.
    """
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise OutputError(f"output {str(path)!r} names an existing folder, not a new output; give a new name such as out/")
    if len(os.fsencode(p.name)) > _NAME_MAX:
        raise OutputError(f"output name {p.name[:40]!r}… is {len(os.fsencode(p.name))} bytes; "
                          f"file names may have at most {_NAME_MAX}: choose a shorter name")
    if os.path.lexists(p):
        if not overwrite:
            raise OutputError(f"output {str(p)!r} already exists; pass --overwrite (overwrite=True) or choose another path")
        if p.is_dir() and not p.is_symlink():
            check_replaceable(p)
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {str(parent)!r}: {e.strerror or e}; choose a writable location") from None
    if not parent.is_dir():
        raise OutputError(f"{str(parent)!r} is not a folder, so {str(p)!r} cannot be created in it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {str(parent)!r} is not writable; choose a writable location")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False, directory: bool = False,
                manifest: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling path; on success move it onto ``path`` in one atomic step.

    On any exception (also ``KeyboardInterrupt``) the temporary file or folder is removed and
    ``path`` is left untouched, so no partial output is ever visible under the final name. A
    folder output gets a manifest (:data:`layerkit.io.owned.MANIFEST`) listing its files, unless
    ``manifest`` is false (layer folders: their ``layers.json`` already lists every file).

    Args:
        path: final file or folder path.
        overwrite: replace an existing file, or a folder that layerkit wrote.
        directory: yield a (created, empty) temporary folder instead of a file path.
        manifest: write the manifest into a folder output.

    Raises:
        OutputError: see :func:`check_output`; and a failed write (disk full, quota, I/O error).
    """
    final = check_output(path, overwrite)
    parent = final.parent if str(final.parent) else Path(".")
    sweep_stale(parent)
    prefix, suffix = temp_affixes(final.name, directory)
    try:
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as e:
        raise _write_error(final, e) from None
    try:
        yield tmp
        if directory and manifest:
            write_manifest(tmp)
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
        with _signals_deferred():  # Ctrl-C/SIGTERM wait for the few syscalls of the swap
            leftover = _commit(tmp, final, overwrite)
        if leftover is not None:  # the old version, now under a temporary name (swept later if this fails)
            with contextlib.suppress(OSError):
                _remove(leftover)
    except BaseException as e:
        with contextlib.suppress(OSError):
            _remove(tmp)
        if isinstance(e, OSError) and not isinstance(e, LayerkitError):
            raise _write_error(final, e) from None
        raise


def temp_affixes(name: str, directory: bool) -> tuple[str, str]:
    """``(prefix, suffix)`` of the temporary name for output ``name``, together under 255 bytes."""
    suffix = ".tmp" + ("" if directory else Path(name).suffix[:16])
    stem = name
    budget = _NAME_MAX - len(os.fsencode(suffix)) - 40  # pid, host, random part and dots
    while len(os.fsencode(stem)) > budget:
        stem = stem[:-1]
    return f".{stem}.lk{_HOST}-{os.getpid()}-", suffix


def sweep_stale(folder: Path, force: bool = False) -> list[Path]:
    """Remove temporary entries of dead layerkit runs of this host in ``folder``; returns them.

    An entry is swept only if its name matches layerkit's temporary pattern, names this host,
    and its pid is not a running process. Errors are ignored (another run may sweep it first).
    A folder is scanned at most every :data:`SWEEP_EVERY_S` seconds per process (a loop writing
    many files into one folder must not rescan it each time) unless ``force``.
    """
    removed: list[Path] = []
    key, now = os.path.abspath(folder), time.monotonic()
    if not force and now - _SWEPT.get(key, -SWEEP_EVERY_S) < SWEEP_EVERY_S:
        return removed
    _SWEPT[key] = now
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TMP_RE.match(e.name)
        if m is None or m["host"] != _HOST or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            _remove(Path(e.path))
            removed.append(Path(e.path))
    return removed


#: Least time between two sweeps of one folder by one process.
SWEEP_EVERY_S = 10.0
_SWEPT: dict[str, float] = {}  # folder → when this process last swept it (time.monotonic)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _commit(tmp: Path, final: Path, overwrite: bool) -> Path | None:
    """Move ``tmp`` onto ``final``: rename if new, atomic exchange if present; under a parent lock.

    Returns:
        The path now holding the old version (to delete), or None.
    """
    with _locked(final.parent if str(final.parent) else Path(".")):
        if not os.path.lexists(final):
            _rename_new(tmp, final)
            return None
        if not overwrite:
            raise OutputError(f"output {str(final)!r} already exists (written meanwhile by another process); "
                              "pass --overwrite or choose another path")
        old_is_dir = final.is_dir() and not final.is_symlink()
        if old_is_dir:
            check_replaceable(final)
        elif tmp.is_dir() and not final.is_symlink():
            raise OutputError(f"output {str(final)!r} is a file and this output is a folder; "
                              "remove the file or choose another path")
        if _renameat2(tmp, final, _RENAME_EXCHANGE):
            return tmp  # tmp now holds the old version
        if old_is_dir or final.is_symlink():
            old = final.with_name(tmp.name + ".old")  # same pid pattern: swept if we die before the next line
            os.replace(final, old)
            os.replace(tmp, final)
            return old
        os.replace(tmp, final)  # a file onto a file: rename(2) is atomic
        return None


def _rename_new(tmp: Path, final: Path) -> None:
    if _renameat2(tmp, final, _RENAME_NOREPLACE):
        return
    if tmp.is_dir():
        os.rename(tmp, final)  # onto a missing name; fails (ENOTEMPTY/EEXIST) rather than clobbering
    else:
        os.replace(tmp, final)


_LIBC: ctypes.CDLL | None | bool = None


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False where unsupported (then the caller falls back)."""
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            _LIBC = lib if hasattr(lib, "renameat2") else False
        except OSError:
            _LIBC = False
    if not _LIBC:
        return False
    rc = _LIBC.renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)  # type: ignore[union-attr]
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)):
        return False
    if err == errno.EEXIST and flags == _RENAME_NOREPLACE:
        raise OutputError(f"output {str(dst)!r} already exists (written meanwhile by another process); "
                          "pass --overwrite or choose another path")
    raise OSError(err, os.strerror(err), str(dst))


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Block SIGINT/SIGTERM/SIGHUP in this thread for the block; pending ones arrive right after."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` (best effort: no lock where the system has none)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        fd = -1
    if fd < 0 or fcntl is None:
        if fd >= 0:
            os.close(fd)
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_error(final: Path, e: OSError) -> OutputError:
    why = e.strerror or str(e)
    hint = "free disk space or choose another location" if e.errno in _NO_SPACE else "check the location and try again"
    where = f" ({e.filename})" if e.filename and str(e.filename) != str(final) else ""
    return OutputError(f"writing {str(final)!r} failed: {why}{where}; {hint}; nothing was written")


def _remove(p: Path) -> None:
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
