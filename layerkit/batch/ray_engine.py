"""The Ray engine: the same per-image function on Ray Data, one actor per worker.

``ray`` is an optional extra (``pip install 'layerkit[ray]'``) imported only here. Jobs become a
Ray Dataset (``ray.data.from_items``); ``map_batches`` runs :class:`RayImageWorker` — a callable
class, so Ray keeps ``workers`` actors alive, each holding its pipeline (and its learned models on
its GPUs with ``gpus_per_worker``) — and the driver streams the records back with ``iter_rows``
and writes the index. Records travel as JSON strings (one column), so Arrow never has to infer a
schema from nested, partly empty fields. Actors write their outputs straight into ``OUT``: on a
cluster ``OUT`` must be a filesystem every node mounts at the same path. Ray restarts an actor
that dies and retries its batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from layerkit.batch.jobs import Job
from layerkit.batch.worker import THREAD_VARS, ImageWorker, WorkerSpec, one_line
from layerkit.errors import ConfigError


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data; install it with pip install 'layerkit[ray]' "
                          "(or use the local pool: --engine local)") from None
    return ray


class RayImageWorker:
    """Ray Data actor: builds the pipeline once; a batch ``{"job": [json, ...]}`` → ``{"record": [json, ...]}``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.error: str | None = None
        try:
            self.worker: ImageWorker | None = ImageWorker(WorkerSpec(**spec))
        except Exception as e:  # reported through the first record, the driver stops the run
            self.worker, self.error = None, one_line(e)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for text in batch["job"]:
            job = json.loads(text)
            if self.worker is None:
                rec = {"id": job["id"], "fatal": f"a worker could not build the pipeline: {self.error}"}
            else:
                rec = self.worker(job)
            out.append(json.dumps(rec))
        return {"record": np.array(out, dtype=object)}


class RayEngine:
    """Runs jobs on Ray Data.

    Args:
        spec: worker settings.
        workers: number of actors.
        address: Ray cluster address (``auto``, ``ray://host:10001``); ``None`` starts a local Ray
            with ``num_cpus`` CPUs (default ``workers * spec.threads``).
        gpus_per_worker: GPUs each actor requests (learned configs; 0 for the classical one).
        num_cpus: CPUs of a locally started Ray.
    """

    def __init__(self, spec: WorkerSpec, workers: int = 1, address: str | None = None, gpus_per_worker: float = 0.0,
                 num_cpus: int | None = None) -> None:
        self.ray = import_ray()
        self.spec, self.workers, self.address = spec, max(1, workers), address
        self.gpus, self.num_cpus = gpus_per_worker, num_cpus
        self._started = False

    def _init(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        env = {v: str(self.spec.threads) for v in THREAD_VARS}
        kw: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False, "include_dashboard": False,
                              "logging_level": logging.WARNING}
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        if self.address:
            ray.init(address=self.address, **kw)
        else:
            ray.init(num_cpus=self.num_cpus or self.workers * max(1, self.spec.threads), **kw)
        self._started = True

    def run(self, jobs: Sequence[Job]) -> Iterator[dict[str, Any]]:
        if not jobs:
            return
        self._init()
        ctx = self.ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the driver shows one bar of its own
        items = [{"job": json.dumps(j.to_dict())} for j in jobs]
        # small blocks keep actors evenly busy and bound what a driver crash makes redo
        blocks = min(len(items), max(8 * self.workers, len(items) // 16))
        ds = self.ray.data.from_items(items, override_num_blocks=blocks)
        ds = ds.map_batches(RayImageWorker, fn_constructor_kwargs={"spec": asdict(self.spec)}, batch_size=1,
                            compute=self.ray.data.ActorPoolStrategy(size=self.workers), num_cpus=max(1, self.spec.threads),
                            num_gpus=self.gpus or None)
        for row in ds.iter_rows():
            rec = json.loads(row["record"])
            if "fatal" in rec:
                raise ConfigError(rec["fatal"])
            yield rec

    def close(self, kill: bool = False) -> None:
        """Shut down a Ray this engine started (a cluster given by ``address`` is left running)."""
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False
