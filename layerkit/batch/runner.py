"""The driver of a batch run: what is left to do, the engine, the index, the bar, the summary.

``run_batch`` is what ``layerkit batch`` calls. It takes the output folder's lock, checks a resumed
run has the same settings, deletes what interrupted atomic writes left behind, skips the images
whose outputs are complete, runs the rest on the engine, records every result (failures included)
in the index as it arrives, and writes ``OUT/summary.json``. Ctrl-C and SIGTERM stop the engine
(workers killed, nothing half-written stays) and leave the index consistent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from layerkit.batch.index import SETTINGS, SUMMARY, BatchIndex, check_settings, remove_partials
from layerkit.batch.jobs import Job
from layerkit.batch.worker import THREAD_VARS, WorkerSpec, check_config
from layerkit.io.atomic import _signals_deferred  # Ctrl-C/SIGTERM wait for a few statements

ENGINES = ("local", "ray")


@dataclass
class Summary:
    """How a run went (``OUT/summary.json``).

    Attributes:
        images: images in the source.
        skipped: complete before this run (``--resume``).
        done: decomposed by this run.
        failed: failed in this run (recorded in the index with their error).
        left: not reached (interrupted run).
        interrupted: stopped by Ctrl-C / SIGTERM.
        wall_seconds: the run's wall time (engine start-up included).
        images_per_s: images finished (done + failed) per second of wall time.
        mean_seconds: mean per-image time measured in the workers.
        failures: ``{id: error}`` of this run's failures (first 20).
    """

    images: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    left: int = 0
    interrupted: bool = False
    engine: str = "local"
    workers: int = 1
    wall_seconds: float = 0.0
    images_per_s: float = 0.0
    mean_seconds: float | None = None
    failures: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        state = "interrupted" if self.interrupted else "finished"
        s = (f"batch {state}: {self.done} done, {self.failed} failed, {self.skipped} done before, {self.left} left "
             f"of {self.images} in {self.wall_seconds:.1f} s ({self.images_per_s:.2f} images/s, {self.engine} x{self.workers})")
        if self.interrupted:
            s += "; rerun with --resume to finish"
        return s


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the driver, so it stops like Ctrl-C (main thread only)."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """Cap the compute threads of the worker processes started inside (they inherit the environment)."""
    old = {v: os.environ.get(v) for v in THREAD_VARS}
    os.environ.update({v: str(threads) for v in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def make_engine(spec: WorkerSpec, engine: str = "local", workers: int = 1, address: str | None = None,
                gpus_per_worker: float = 0.0, num_cpus: int | None = None) -> Any:
    """The engine object (``run(jobs) -> records``, ``close(kill)``)."""
    from layerkit.errors import ConfigError

    if engine == "local":
        if address:
            raise ConfigError("--address is for --engine ray; drop it or add --engine ray")
        from layerkit.batch.local import LocalPool

        return LocalPool(spec, workers)
    if engine == "ray":
        from layerkit.batch.ray_engine import RayEngine

        return RayEngine(spec, workers, address=address, gpus_per_worker=gpus_per_worker, num_cpus=num_cpus)
    raise ConfigError(f"--engine {engine!r} is not valid; use one of {list(ENGINES)}")


def run_batch(jobs: Sequence[Job], spec: WorkerSpec, *, engine: str = "local", workers: int = 1, resume: bool = False,
              address: str | None = None, gpus_per_worker: float = 0.0, num_cpus: int | None = None,
              progress: bool = True, index_every: float = 5.0) -> Summary:
    """Decompose ``jobs`` into ``spec.out``; returns the :class:`Summary` (also ``OUT/summary.json``).

    Raises:
        OutputError: ``OUT`` holds another run (without ``resume``), is locked, or was run with
            other settings.
        ConfigError: bad engine options, Ray missing, or a worker cannot build the pipeline.
    """
    from layerkit.progress import item_bar

    out = Path(spec.out)
    t0 = time.perf_counter()
    check_config(spec)
    check_settings(out, spec.settings(), resume)
    eng = make_engine(spec, engine, workers, address, gpus_per_worker, num_cpus)  # before the lock: may raise
    index = BatchIndex(out, every=index_every)
    summary = Summary(images=len(jobs), engine=engine, workers=workers)
    seconds: list[float] = []
    try:
        if not (out / SETTINGS).exists():
            index.write_json(SETTINGS, spec.settings())
        remove_partials(out)
        pending = [j for j in jobs if not index.complete(j.id, spec.fmt)]
        summary.skipped = len(jobs) - len(pending)
        summary.left = len(pending)
        if summary.skipped and progress:
            print(f"batch: {summary.skipped} of {len(jobs)} images done before, {len(pending)} to do", file=sys.stderr)
        bar = item_bar(len(pending), "batch", enabled=progress, unit="img")  # ETA and images/s over what is left
        try:
            with _stop_on_sigterm(), _thread_env(spec.threads):
                for rec in eng.run(pending):
                    with _signals_deferred():  # the index and the summary count the same images
                        index.add(rec)
                        summary.left -= 1
                        ok = rec["status"] == "ok"
                        if ok:
                            summary.done += 1
                        else:
                            summary.failed += 1
                            if len(summary.failures) < 20:
                                summary.failures[rec["id"]] = rec["error"]
                    if rec.get("seconds") is not None:
                        seconds.append(rec["seconds"])
                    bar.update(rec["id"], "ok" if ok else f"failed: {rec['error']}", failed=not ok)  # failures stay above the bar
                eng.close(kill=True)  # nothing is in flight: ending the workers now spares their slow interpreter teardown
        except KeyboardInterrupt:
            summary.interrupted = True
            eng.close(kill=True)
            remove_partials(out)  # the killed workers' temporary files
        except BaseException:
            eng.close(kill=True)
            remove_partials(out)
            raise
        finally:
            bar.close()
    finally:
        summary.wall_seconds = round(time.perf_counter() - t0, 2)
        finished = summary.done + summary.failed
        summary.images_per_s = round(finished / summary.wall_seconds, 4) if summary.wall_seconds else 0.0
        summary.mean_seconds = round(sum(seconds) / len(seconds), 3) if seconds else None
        index.write_json(SUMMARY, asdict(summary))
        index.close()
    return summary
