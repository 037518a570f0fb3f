"""The per-image function both engines run: a worker builds its pipeline once, then turns jobs
into index records.

A record (one line of ``OUT/index.jsonl``) is a JSON object::

    {"id": "a", "image": "/abs/a.jpg", "status": "ok" | "failed", "output": "a" | "a.psd",
     "objects_found": 2, "layers": [{"name": "background", "file": "a/layer_00.png"}, ...],
     "objects": [{"index": 0, "name": "cup", "status": "layer", "layer": 1, "area": 0.04,
                  "prompt": {...record as given...}}, ...],
     "recompose_psnr_db": 48.2, "seconds": 3.1, "error": null,
     "worker": {"pid": 123, "peak_rss_mb": 410.0, "cpu_s": 2.9}}

``layers[].file`` is relative to ``OUT``; for PSD/ORA every layer's ``file`` is the document and
``layer`` its index in it. ``worker.cpu_s`` is the CPU time the worker process spent on the image
(all its threads). A failed record has ``status: "failed"`` and ``error`` (one line).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from layerkit.batch.jobs import Job, output_path
from layerkit.evaluation.runner import peak_rss_mb

#: Environment variables that cap a process's compute threads (read when the libraries load).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass
class WorkerSpec:
    """Everything a worker needs to build its pipeline and write outputs (picklable, JSON-able).

    Attributes:
        out: output folder (shared by all workers; on a cluster a shared filesystem).
        config: pipeline config name or YAML path (``NAME+OVERLAY`` allowed).
        overrides: dotted config overrides (``--set`` plus ``--device``/``--seed``/``--max-pixels``).
        fmt: ``folder``, ``psd`` or ``ora``.
        auto: images without prompts are decomposed automatically (else they fail).
        order: default object order (``auto``/``given``).
        max_layers: most layers per image, background included.
        min_area: alpha mass below which an object counts as not found.
        threads: compute threads per worker (torch, OpenMP, numba).
    """

    out: str
    config: str = "classical+peel"
    overrides: list[str] = field(default_factory=list)
    fmt: str = "folder"
    auto: bool = False
    order: str = "auto"
    max_layers: int = 20
    min_area: float = 5e-4
    threads: int = 1

    def settings(self) -> dict[str, Any]:
        """What decides the outputs (a resumed run must match these)."""
        d = asdict(self)
        d.pop("threads")
        d["out"] = str(Path(self.out).resolve())
        return d


def check_config(spec: WorkerSpec) -> None:
    """Validate the config, overlays and overrides in the driver, before any worker starts or any
    output is touched (stages are built, and weights loaded, only in the workers).

    Raises:
        ConfigError: unknown config, overlay, key or backend.
    """
    from layerkit.config import load_config

    load_config(spec.config, list(spec.overrides))


def one_line(e: BaseException) -> str:
    """An exception as one line: a layerkit error's own message, else ``Type: message``."""
    from layerkit.errors import LayerkitError

    msg = str(e) if isinstance(e, LayerkitError) else f"{type(e).__name__}: {e}"
    return " ".join(msg.split()) or type(e).__name__


def capped_overrides(spec: WorkerSpec) -> list[str]:
    """``spec.overrides`` plus ``ROLE.threads=N`` for every stage whose own ``threads`` exceeds the
    worker's (a GrabCut segmenter runs its initialisations in threads), unless the user set it."""
    from layerkit.config import load_config, parse_override

    overrides = list(spec.overrides)
    given = {parse_override(o)[0] for o in overrides}
    for role, body in load_config(spec.config, dict(parse_override(o) for o in overrides)).items():
        n = body.get("threads") if isinstance(body, dict) else None
        if isinstance(n, int) and n > spec.threads and f"{role}.threads" not in given:
            overrides.append(f"{role}.threads={max(1, spec.threads)}")
    return overrides


class ImageWorker:
    """Builds the pipeline once; ``worker(job) -> record``. Never raises for a bad image.

    Args:
        spec: the run's :class:`WorkerSpec`.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        import torch

        from layerkit.pipelines.decompose import Pipeline

        self.spec = spec
        torch.set_num_threads(max(1, spec.threads))
        self.pipe = Pipeline.from_config(spec.config, capped_overrides(spec))
        self.pipe.progress = None

    def __call__(self, job: Job | dict[str, Any]) -> dict[str, Any]:
        job = job if isinstance(job, Job) else Job(**job)
        t0, c0 = time.perf_counter(), time.process_time()
        rec: dict[str, Any] = {"id": job.id, "image": job.image, "status": "failed", "output": None, "objects_found": 0,
                               "layers": [], "objects": [], "recompose_psnr_db": None, "seconds": None, "error": None}
        try:
            rec.update(self._decompose(job))
            rec["status"] = "ok"
        except Exception as e:  # one bad image must not stop the run: it is recorded instead
            from layerkit.errors import LayerkitError

            rec["error"] = one_line(e)
            if not isinstance(e, LayerkitError) and os.environ.get("LAYERKIT_BATCH_TRACE"):
                traceback.print_exc(file=sys.stderr)
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        rec["worker"] = {"pid": os.getpid(), "peak_rss_mb": round(peak_rss_mb(), 1), "cpu_s": round(time.process_time() - c0, 3)}
        return rec

    def _decompose(self, job: Job) -> dict[str, Any]:
        from layerkit.cli.layers import parse_order, prompts_from_records
        from layerkit.errors import PromptError
        from layerkit.pipelines.sequential import peel_layers

        spec = self.spec
        if not job.objects and not spec.auto:
            raise PromptError("no prompts for this image (add it to --prompts, or pass --auto to find its objects)")
        records = job.objects or []
        prompts, names = prompts_from_records(records)
        order = job.order if job.order is not None else spec.order
        res = peel_layers(self.pipe, job.image, prompts or None, order=parse_order(order) if isinstance(order, str) else order,
                          max_layers=spec.max_layers, names=names or None, min_area=spec.min_area)
        if not any(o.status == "layer" for o in res.objects):
            raise PromptError("no object was found in the image, so there is nothing to layer")
        target = output_path(spec.out, job.id, spec.fmt)
        res.stack.save(target, overwrite=True)  # atomic: complete under its name, or absent
        objects = []
        for o in res.objects:
            d = {k: v for k, v in asdict(o).items() if k in ("index", "name", "status", "layer", "area", "detail")}
            d["area"] = round(float(d["area"]), 6)
            d["prompt"] = records[o.index] if o.index < len(records) else _auto_prompt(res.stack, o.layer)
            objects.append(d)
        return {"output": target.name, "objects_found": sum(o.status == "layer" for o in res.objects),
                "layers": _layer_files(target, spec.fmt, res.stack.names), "objects": objects,
                "recompose_psnr_db": round(res.psnr, 2) if res.psnr == res.psnr and abs(res.psnr) != float("inf") else None}


def _auto_prompt(stack: Any, layer: int | None) -> dict[str, Any] | None:
    """The prompt an automatically found layer carries (``Layer.prompt``), as an object record."""
    if layer is None or stack[layer].prompt is None:
        return None
    p = stack[layer].prompt.to_dict()
    if "mask_bbox" in p and "boxes" not in p:  # a mask prompt is kept as its box (masks stay out of the index)
        p["boxes"] = [p["mask_bbox"]]
    return {k: v for k, v in p.items() if k in ("boxes", "points", "labels", "text")}


def _layer_files(target: Path, fmt: str, names: list[str]) -> list[dict[str, Any]]:
    if fmt != "folder":
        return [{"name": n, "file": target.name, "layer": i} for i, n in enumerate(names)]
    doc = json.loads((target / "layers.json").read_text())
    return [{"name": m["name"], "file": f"{target.name}/{m['file']}", "layer": m["index"]} for m in doc["layers"]]
