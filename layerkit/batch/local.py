"""The local engine: a pool of spawned worker processes (:class:`concurrent.futures.ProcessPoolExecutor`).

Workers start with the ``spawn`` method: forked workers hang in pymatting's numba-parallel code
once the parent has run OpenMP (the same finding as the training data loaders). Each worker builds
its pipeline once (the pool's initializer), ignores SIGINT (the driver owns Ctrl-C) and asks the
kernel to kill it when the driver dies (``PR_SET_PDEATHSIG``), so a SIGKILLed driver leaves no
worker writing behind it. A worker that dies (SIGKILL, out of memory) breaks the pool; the pool is
rebuilt and the images in flight are tried again, up to ``max_attempts`` times each.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from layerkit.batch.jobs import Job
from layerkit.batch.worker import ImageWorker, WorkerSpec, one_line

_WORKER: ImageWorker | None = None
_INIT_ERROR: str | None = None
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when its parent exits (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


def _init(spec: WorkerSpec, parent: int) -> None:
    global _WORKER, _INIT_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    try:
        _WORKER = ImageWorker(spec)
    except Exception as e:  # reported by the first job: the driver stops the run with this message
        _INIT_ERROR = one_line(e)


def _run(job: dict[str, Any]) -> dict[str, Any]:
    if _WORKER is None:
        return {"id": job["id"], "fatal": f"a worker could not build the pipeline: {_INIT_ERROR}"}
    return _WORKER(job)


def died_record(job: Job, attempts: int) -> dict[str, Any]:
    return {"id": job.id, "image": job.image, "status": "failed", "output": None, "objects_found": 0, "layers": [],
            "objects": [], "recompose_psnr_db": None, "seconds": None,
            "error": f"the worker process died while decomposing this image ({attempts} attempts; killed or out of memory)",
            "worker": {"pid": None, "peak_rss_mb": None, "cpu_s": None}}


class LocalPool:
    """Runs jobs on ``workers`` local processes; :meth:`run` yields records as images finish.

    Args:
        spec: worker settings.
        workers: number of processes.
        max_attempts: tries per image when workers die under it.
    """

    def __init__(self, spec: WorkerSpec, workers: int = 1, max_attempts: int = 3) -> None:
        self.spec, self.workers, self.max_attempts = spec, max(1, workers), max_attempts
        self._ex: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        self._ex = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init, initargs=(self.spec, os.getpid()))
        return self._ex

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and memory figures)."""
        return [p.pid for p in (getattr(self._ex, "_processes", None) or {}).values() if p.pid]

    def run(self, jobs: Sequence[Job]) -> Iterator[dict[str, Any]]:
        queue, inflight = deque(jobs), {}  # type: ignore[var-annotated]
        attempts: Counter[str] = Counter()
        ex, broken = self._start(), False
        while queue or inflight:
            if broken and not inflight:  # every future of the broken pool is back: start a new one
                ex.shutdown(wait=True)
                ex, broken = self._start(), False
            while queue and not broken and len(inflight) < 2 * self.workers:  # a short queue: Ctrl-C loses little
                job = queue.popleft()
                try:
                    inflight[ex.submit(_run, job.to_dict())] = job
                except BrokenProcessPool:  # a worker died since the last wait
                    queue.appendleft(job)
                    broken = True
            if not inflight:
                continue
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: inflight[f].id):
                job = inflight.pop(fut)
                rec = _result(fut)
                if rec is None:
                    broken = True
                    attempts[job.id] += 1
                    if attempts[job.id] >= self.max_attempts:
                        yield died_record(job, attempts[job.id])
                    else:
                        queue.appendleft(job)
                    continue
                if "fatal" in rec:
                    from layerkit.errors import ConfigError

                    raise ConfigError(rec["fatal"])
                yield rec

    def close(self, kill: bool = False) -> None:
        """Shut the pool down; ``kill`` ends the workers now (Ctrl-C) instead of letting them finish."""
        if self._ex is None:
            return
        if kill:
            # ProcessPoolExecutor has no public kill before Python 3.14 (terminate_workers)
            for p in list((getattr(self._ex, "_processes", None) or {}).values()):
                p.kill()
        self._ex.shutdown(wait=True, cancel_futures=True)
        self._ex = None


def _result(fut: Future) -> dict[str, Any] | None:
    try:
        return fut.result()
    except BrokenProcessPool:
        return None
