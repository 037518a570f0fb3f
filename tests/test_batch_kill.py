"""Killing a batch run part-way: a worker (SIGKILL), the driver (SIGKILL), Ctrl-C and SIGTERM; then
``--resume``. Every image must end up done exactly once, with no partial files.

Each test runs ``python -m layerkit batch`` as a child process on 8 small images and acts on it as
soon as its journal shows the first finished images.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from batch_fixtures import check_complete_outputs, index_lines, make_collection, partials

from layerkit.batch.index import read_records
from layerkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
N = 8
pytestmark = pytest.mark.slow


def start(imgs: Path, prompts: Path, out: Path, workers: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "layerkit", "batch", str(imgs), "-o", str(out), "--prompts", str(prompts),
           "--workers", str(workers), "--quiet", "--index-every", "0"]
    # a session of its own, so a Ctrl-C can go to the whole group as a terminal sends it
    # a run started from a background shell inherits SIGINT ignored; the user's terminal gives the default
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_done(out: Path, proc: subprocess.Popen, n: int, timeout: float = 300) -> dict[str, dict]:
    """Records once ``n`` images are recorded (journal or index)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        recs = read_records(out) if out.exists() else {}
        if len(recs) >= n:
            return recs
        assert proc.poll() is None, f"run ended early: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} images recorded after {timeout} s")


def workers_of(pid: int) -> list[psutil.Process]:
    kids = psutil.Process(pid).children()
    return [k for k in kids if "spawn_main" in " ".join(k.cmdline())]


def resume_and_check(imgs: Path, prompts: Path, out: Path, before: dict[str, dict]) -> dict:
    """``--resume`` in-process; every image done once, complete images before it untouched."""
    stamps = {i: (out / i / "layers.json").stat().st_mtime_ns for i, r in before.items() if r["status"] == "ok"}
    assert main(["batch", str(imgs), "-o", str(out), "--prompts", str(prompts), "--resume", "--quiet"]) == 0
    recs = index_lines(out)
    assert sorted(r["id"] for r in recs) == [f"im{i}" for i in range(N)]  # each image once
    assert all(r["status"] == "ok" for r in recs)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [f"im{i}" for i in range(N)]
    assert not partials(out)
    check_complete_outputs(out)
    assert all((out / i / "layers.json").stat().st_mtime_ns == t for i, t in stamps.items()), "a complete image was redone"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] >= len(stamps) and summary["skipped"] + summary["done"] == N
    return summary


@pytest.fixture
def collection(tmp_path):
    imgs, prompts = make_collection(tmp_path, n=N, size=(96, 128), corrupt=False)
    return imgs, prompts, tmp_path / "out"


def test_sigkill_of_the_driver_then_resume(collection):
    imgs, prompts, out = collection
    proc = start(imgs, prompts, out, workers=1)
    before = wait_done(out, proc, 2)
    kids = workers_of(proc.pid)
    assert kids, "no worker process found"
    proc.kill()
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(kids, timeout=20)  # PR_SET_PDEATHSIG: the workers die with the driver
    assert not alive, f"workers outlived the driver: {[k.pid for k in alive]}"
    check_complete_outputs(out)  # what has its final name is whole, whatever was cut
    summary = resume_and_check(imgs, prompts, out, before)
    assert summary["done"] >= 1


def test_sigkill_of_a_worker_the_run_goes_on(collection):
    imgs, prompts, out = collection
    proc = start(imgs, prompts, out, workers=2)
    before = wait_done(out, proc, 1)
    victim = workers_of(proc.pid)[0]
    victim.kill()
    rc = proc.wait(timeout=600)
    err = proc.stderr.read().decode()
    assert rc == 0, err[-2000:]  # the pool was rebuilt and the images in flight retried
    recs = index_lines(out)
    assert sorted(r["id"] for r in recs) == [f"im{i}" for i in range(N)] and all(r["status"] == "ok" for r in recs)
    assert victim.pid not in {r["worker"]["pid"] for r in recs if r["id"] not in before}
    assert not partials(out)
    summary = resume_and_check(imgs, prompts, out, read_records(out))
    assert (summary["skipped"], summary["done"]) == (N, 0)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_stops_cleanly(collection, how):
    imgs, prompts, out = collection
    proc = start(imgs, prompts, out, workers=2)
    before = wait_done(out, proc, 1)
    kids = workers_of(proc.pid)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal does: workers ignore it, the driver stops them
    else:
        proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=120)
    err = proc.stderr.read().decode()
    assert rc == 130, err[-2000:]
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    _, alive = psutil.wait_procs(kids, timeout=20)
    assert not alive
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["done"] + summary["left"] + summary["failed"] == N
    recs = index_lines(out)  # consistent: every line parses, one per finished image, journal folded in
    assert len(recs) == len({r["id"] for r in recs}) == summary["done"] and not (out / "index.journal.jsonl").exists()
    assert not partials(out)
    resume_and_check(imgs, prompts, out, {r["id"]: r for r in recs} | before)
