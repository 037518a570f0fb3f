"""Batch decomposition of a collection: a resumable runner on a local process pool or on Ray Data.

* :mod:`layerkit.batch.jobs` — sources (folder, glob, JSON-lines shards) → :class:`~layerkit.batch.jobs.Job`.
* :mod:`layerkit.batch.worker` — the per-image function (:class:`~layerkit.batch.worker.ImageWorker`).
* :mod:`layerkit.batch.local` / :mod:`layerkit.batch.ray_engine` — the two engines.
* :mod:`layerkit.batch.index` — the atomic index, journal and lock.
* :mod:`layerkit.batch.runner` — the driver (:func:`~layerkit.batch.runner.run_batch`).
* :mod:`layerkit.batch.triplets` — image-layer-prompt triplets from a batch output, quality-filtered.

See docs/batch.md.
"""
