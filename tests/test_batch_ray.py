"""``layerkit batch --engine ray`` on a local Ray (``ray.init(num_cpus=2)``) gives the outputs of the local pool."""

from __future__ import annotations

import json

import numpy as np
import pytest
from batch_fixtures import BAD, check_complete_outputs, index_lines, make_collection, partials, read_output, strip_timing

from layerkit.batch.jobs import list_jobs
from layerkit.batch.runner import run_batch
from layerkit.batch.worker import WorkerSpec
from layerkit.cli import main

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'layerkit[ray]')")
pytestmark = pytest.mark.slow


def test_local_pool_and_ray_give_identical_outputs(tmp_path, capsys):
    imgs, prompts = make_collection(tmp_path, n=3)
    jobs = list_jobs(str(imgs), str(prompts))
    local = run_batch(jobs, WorkerSpec(out=str(tmp_path / "local"), threads=1), workers=2, progress=False)
    assert (local.done, local.failed) == (3, 1)
    try:
        rc = main(["batch", str(imgs), "-o", str(tmp_path / "ray"), "--prompts", str(prompts), "--engine", "ray",
                   "--workers", "2", "--threads", "1", "--quiet"])
    finally:
        if ray.is_initialized():  # the engine shuts down the Ray it started; this only guards a failure
            ray.shutdown()
    assert rc == 1 and not ray.is_initialized()
    a, b = index_lines(tmp_path / "local"), index_lines(tmp_path / "ray")
    assert [strip_timing(r) for r in a] == [strip_timing(r) for r in b]
    assert [r["id"] for r in b if r["status"] == "failed"] == [BAD]
    for ra, rb in zip(a, b):
        for pa, pb in zip(read_output(tmp_path / "local", ra), read_output(tmp_path / "ray", rb)):
            np.testing.assert_array_equal(pa, pb)
    for d in ("local", "ray"):
        assert not partials(tmp_path / d)
        check_complete_outputs(tmp_path / d)
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert (summary["engine"], summary["done"], summary["failed"]) == ("ray", 3, 1)
    assert "3 done, 1 failed" in capsys.readouterr().err
