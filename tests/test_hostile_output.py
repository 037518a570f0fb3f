"""Hostile input and faults, outputs: what ``--overwrite`` may replace, atomic replacement under
concurrency, crashes and signals, temporary names, write errors, permissions.

Each test named in docs/guarantees.md backs one promise there.
"""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerkit.cli import main
from layerkit.errors import OutputError
from layerkit.io import atomic
from layerkit.io.atomic import atomic_path, check_output, sweep_stale, temp_affixes
from layerkit.io.layers import load_stack, save_stack
from layerkit.io.owned import MANIFEST, check_replaceable
from layerkit.types import Layer, LayerStack

ROOT = Path(__file__).resolve().parents[1]


def stack_of(k: int = 0, size: int = 24) -> LayerStack:
    rng = np.random.default_rng(k)
    a = np.zeros((size, size), np.float32)
    a[4:14, 6:18] = 1.0
    return LayerStack([Layer.from_rgb(np.full((size, size, 3), (k % 5) / 5, np.float32), name=f"bg{k}"),
                       Layer.from_rgb(rng.random((size, size, 3)).astype(np.float32), a, name=f"fg{k}")])


def user_folder(root: Path) -> Path:
    d = root / "pics"
    (d / "2019").mkdir(parents=True)
    (d / "holiday.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (d / "2019" / "beach.jpg").write_bytes(b"beach")
    return d


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ what --overwrite touches
@pytest.mark.parametrize("suffix", ["", ".psd", ".ora"])
def test_overwrite_refuses_user_folder(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture) -> None:
    d = user_folder(tmp_path)
    before = snapshot(d)
    target = d if not suffix else d.with_suffix(suffix)
    if suffix:  # a folder that happens to carry a document's suffix
        d.rename(target)
    with pytest.raises(OutputError, match="not written by layerkit.*holiday.jpg"):
        save_stack(stack_of(), target, overwrite=True)
    assert snapshot(target) == before
    assert sorted(os.listdir(tmp_path)) == [target.name]  # no temporary left
    # the CLI says it in one line and exits 2, before any work
    src = tmp_path / "src"
    save_stack(stack_of(), src)
    assert main(["edit", str(src), "--move", "1:1,0", "-o", str(target), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("layerkit: error: output folder") and snapshot(target) == before


def test_overwrite_replaces_own_output_only_when_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out"
    save_stack(stack_of(1), out)
    assert not (out / MANIFEST).exists()  # a layer folder is recognised by its layers.json
    save_stack(stack_of(2), out, overwrite=True)
    assert load_stack(out).names == ["bg2", "fg2"]
    (out / "notes.txt").write_text("mine")  # a user adds a file to a layerkit output
    with pytest.raises(OutputError, match="did not write.*notes.txt"):
        save_stack(stack_of(3), out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and load_stack(out).names == ["bg2", "fg2"]


def test_overwrite_report_folder_by_manifest_and_empty_folder(tmp_path: Path) -> None:
    from layerkit.evaluation.runner import write_outputs

    rep = tmp_path / "report"
    write_outputs(rep, {"results.json": "{}", "plots/a.txt": "x"})
    manifest = json.loads((rep / MANIFEST).read_text())
    assert manifest["writer"] == "layerkit" and manifest["files"] == ["plots/a.txt", "results.json"]
    write_outputs(rep, {"results.json": "[]"}, overwrite=True)
    assert (rep / "results.json").read_text() == "[]" and not (rep / "plots").exists()
    (rep / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="mine.txt"):
        write_outputs(rep, {"results.json": "{}"}, overwrite=True)
    (tmp_path / "empty").mkdir()
    save_stack(stack_of(3), tmp_path / "empty", overwrite=True)
    assert load_stack(tmp_path / "empty").names == ["bg3", "fg3"]
    forged = user_folder(tmp_path)  # a layers.json alone does not make a folder layerkit's
    (forged / "layers.json").write_text(json.dumps({"format": "layerkit.layers/1", "layers": [{"file": "holiday.jpg"}]}))
    with pytest.raises(OutputError, match="did not write.*2019/beach.jpg"):
        save_stack(stack_of(), forged, overwrite=True)


names = st.lists(st.sampled_from(["a.png", "b.txt", "sub/c.png", "sub/d/e.jpg", "layers.json", ".hidden"]),
                 unique=True, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(present=names, listed=names, with_manifest=st.booleans())
def test_replaceable_iff_everything_is_layerkits(tmp_path_factory: pytest.TempPathFactory, present: list[str],
                                                 listed: list[str], with_manifest: bool) -> None:
    d = tmp_path_factory.mktemp("r") / "out"
    d.mkdir()
    for rel in present:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text("x")
    if with_manifest:
        (d / MANIFEST).write_text(json.dumps({"writer": "layerkit", "files": listed}))
    before = snapshot(d)
    expected = not present and not with_manifest or with_manifest and set(present) <= set(listed)
    try:
        check_replaceable(d)
    except OutputError as e:
        assert not expected and "\n" not in str(e)
        assert snapshot(d) == before
        return
    assert expected


def test_overwrite_kind_changes(tmp_path: Path) -> None:
    f = tmp_path / "notes"
    f.write_text("a user's file without suffix")
    with pytest.raises(OutputError, match="is a file and this output is a folder"):
        save_stack(stack_of(), f, overwrite=True)
    assert f.read_text() == "a user's file without suffix"
    d = tmp_path / "stack.psd"  # a layerkit folder output may be replaced by a document
    save_stack(stack_of(), tmp_path / "tmpdir")
    os.rename(tmp_path / "tmpdir", d)
    save_stack(stack_of(4), d, overwrite=True)
    assert d.is_file() and load_stack(d).names == ["bg4", "fg4"]


def test_symlink_output_replaces_link_not_target(tmp_path: Path) -> None:
    d = user_folder(tmp_path)
    before = snapshot(d)
    link = tmp_path / "link"
    link.symlink_to(d, target_is_directory=True)
    save_stack(stack_of(5), link, overwrite=True)
    assert not link.is_symlink() and load_stack(link).names == ["bg5", "fg5"]
    assert snapshot(d) == before


@pytest.mark.parametrize("name", [".", "..", "/", "sub/.."])
def test_output_naming_no_new_entry_is_refused(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(OutputError, match="names an existing folder"):
        check_output(name, overwrite=True)


# ------------------------------------------------------------------ temporary names
def test_long_output_name_gets_short_temp_name(tmp_path: Path) -> None:
    name = "é" * 120 + ".psd"  # 244 bytes: legal, but the temp name would not be with the name in full
    save_stack(stack_of(), tmp_path / name)
    assert load_stack(tmp_path / name).names == ["bg0", "fg0"]
    prefix, suffix = temp_affixes("x" * 255, directory=True)
    assert len(os.fsencode(prefix + "abcdefgh" + suffix)) <= 255
    with pytest.raises(OutputError, match="at most 255"):
        save_stack(stack_of(), tmp_path / ("y" * 256))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweep_removes_temps_of_dead_runs_only(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    prefix_dead = temp_affixes("out", True)[0].replace(f"-{alive}-", f"-{dead}-")
    stale_dir = tmp_path / f"{prefix_dead}abcd1234.tmp"
    stale_dir.mkdir()
    (stale_dir / "layer_00.png").write_bytes(b"x")
    stale_file = tmp_path / f"{prefix_dead}zz_99xyz.tmp.psd"
    stale_file.write_bytes(b"x")
    mine = tmp_path / f"{temp_affixes('out', True)[0]}qqqq1111.tmp"  # this (live) process: kept
    mine.mkdir()
    other_host = tmp_path / f".out.lk00000000-{dead}-abcd1234.tmp"  # another host's: kept
    other_host.mkdir()
    lookalike = tmp_path / ".holiday.tmp"  # not layerkit's pattern: kept
    lookalike.write_text("x")
    removed = sweep_stale(tmp_path)
    assert sorted(p.name for p in removed) == sorted([stale_dir.name, stale_file.name])
    assert mine.exists() and other_host.exists() and lookalike.exists()


# ------------------------------------------------------------------ faults while writing
def test_disk_full_is_one_line_error_and_old_output_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    save_stack(stack_of(1), out)
    before = snapshot(out)
    from PIL import Image

    def full(self, fp, *a, **k):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OutputError, match="No space left on device.*free disk space"):
        save_stack(stack_of(2), out, overwrite=True)
    assert snapshot(out) == before and sorted(os.listdir(tmp_path)) == ["out"]
    assert main(["edit", str(out), "--move", "1:1,0", "-o", str(tmp_path / "e.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_exception_and_interrupt_leave_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "out"
    save_stack(stack_of(1), out)
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), atomic_path(out, overwrite=True, directory=True) as tmp:
            (tmp / "half.png").write_bytes(b"x")
            raise exc
    assert sorted(os.listdir(tmp_path)) == ["out"] and load_stack(out).names == ["bg1", "fg1"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_outputs_respect_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        save_stack(stack_of(), tmp_path / "d")
        save_stack(stack_of(), tmp_path / "f.ora")
    finally:
        os.umask(old)
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "f.ora").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "d" / "layers.json").stat().st_mode & 0o777 == 0o666 & ~umask


# ------------------------------------------------------------------ concurrency
def _writer(out: str, k: int, n: int, fallback: bool) -> None:
    if fallback:  # as on a system without renameat2: two renames under the parent lock
        atomic._LIBC = False
    for _ in range(n):
        save_stack(stack_of(k), out, overwrite=True)


@pytest.mark.parametrize("fallback", [False, True], ids=["renameat2", "lock"])
def test_four_concurrent_writers(tmp_path: Path, fallback: bool) -> None:
    out = tmp_path / "o"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(out), k, 15, fallback)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert sorted(os.listdir(tmp_path)) == ["o"]  # one output, no leaked temporaries
    names = load_stack(out).names
    assert names in [[f"bg{k}", f"fg{k}"] for k in range(4)]  # one writer's complete stack


def test_concurrent_reader_always_sees_a_complete_output(tmp_path: Path) -> None:
    out = tmp_path / "o"
    save_stack(stack_of(0), out)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(out), k, 20, False)) for k in range(2)]
    for p in procs:
        p.start()
    seen = 0
    while any(p.is_alive() for p in procs):
        st = load_stack(out)  # raises if the folder were missing or half-written
        assert st.names[0][2:] == st.names[1][2:]
        seen += 1
    for p in procs:
        p.join()
    assert seen > 0 and [p.exitcode for p in procs] == [0, 0]


# ------------------------------------------------------------------ SIGTERM like Ctrl-C
SLOW_EDIT = """
import sys, time
import layerkit.io.layers as L
orig = L._write_folder
def slow(stack, d):
    orig(stack, d)
    print("writing", flush=True)
    time.sleep(60)
L._write_folder = slow
from layerkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_cleanly(tmp_path: Path, sig: int, code: int) -> None:
    out = tmp_path / "out"
    save_stack(stack_of(1), out)
    before = snapshot(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-c", SLOW_EDIT, "edit", str(out), "--move", "1:2,0", "-o", str(out), "--overwrite"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal
    assert p.stdout is not None and p.stdout.readline().strip() == "writing"
    assert len(os.listdir(tmp_path)) == 2  # the output and the temporary being written
    t0 = time.time()
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == code and time.time() - t0 < 10
    assert err.strip().splitlines()[-1].startswith("layerkit: interrupted")
    assert sorted(os.listdir(tmp_path)) == ["out"] and snapshot(out) == before


KILL_LOOP = """
import sys
import numpy as np
from layerkit.io.layers import save_stack
from layerkit.types import Layer, LayerStack
k = 0
print("ready", flush=True)
while True:
    k += 1
    st = LayerStack([Layer.from_rgb(np.full((64, 64, 3), (k % 7) / 7, np.float32), name=f"bg{k}"),
                     Layer(np.full((64, 64, 4), 0.5, np.float32), name=f"fg{k}")])
    save_stack(st, sys.argv[1], overwrite=True)
"""


def test_sigkill_at_any_moment_leaves_a_complete_output(tmp_path: Path) -> None:
    out = tmp_path / "o"
    save_stack(stack_of(0), out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = np.random.default_rng(0)
    for _ in range(4):
        p = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(out)], stdout=subprocess.PIPE, text=True, env=env)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.3, 1.0)))
        p.kill()  # SIGKILL: no cleanup runs
        p.wait()
        st = load_stack(out)  # the output exists and is one complete stack
        assert len(st) == 2 and st.names[0][2:] == st.names[1][2:]
    sweep_stale(tmp_path, force=True)  # what the next write does: the dead runs' temporaries go
    assert sorted(os.listdir(tmp_path)) == ["o"]
