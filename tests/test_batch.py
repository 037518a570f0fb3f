"""``layerkit batch``: job listing, index and lock, the per-image worker, the local pool end to end."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from batch_fixtures import BAD, check_complete_outputs, index_lines, make_collection, partials
from PIL import Image

from layerkit.batch.index import BatchIndex, check_settings, read_records, remove_partials
from layerkit.batch.jobs import Job, list_jobs, output_path
from layerkit.batch.worker import ImageWorker, WorkerSpec
from layerkit.cli import main
from layerkit.errors import ConfigError, DataError, OutputError


# ----------------------------------------------------------------------------- jobs
def test_folder_glob_and_shard_sources(tmp_path):
    imgs, prompts = make_collection(tmp_path, n=2)
    jobs = list_jobs(str(imgs), str(prompts))
    assert [j.id for j in jobs] == [BAD, "im0", "im1"] and jobs[1].objects[0]["name"] == "disc"
    assert jobs[1].image == os.path.abspath(imgs / "im0.png")
    assert [j.id for j in list_jobs(str(imgs / "im*.png"))] == ["im0", "im1"]  # no prompts: objects None
    assert list_jobs(str(imgs / "im*.png"))[0].objects is None
    # shards: paths relative to the shard, mask paths too; ids from the path under the shard's folder
    (tmp_path / "shards" / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "shards" / "m.png")
    os.symlink(imgs / "im0.png", tmp_path / "shards" / "sub" / "a.png")
    rec = {"image": "sub/a.png", "objects": [{"mask": "m.png"}], "order": "given"}
    (tmp_path / "shards" / "s0.jsonl").write_text(json.dumps(rec) + "\n\n")
    (tmp_path / "shards" / "s1.jsonl").write_text(json.dumps({"image": str(imgs / "im1.png")}) + "\n")
    jobs = list_jobs(str(tmp_path / "shards" / "*.jsonl"))
    assert [j.id for j in jobs] == ["im1", "sub__a"]
    a = next(j for j in jobs if j.id == "sub__a")
    assert a.objects == [{"mask": str((tmp_path / "shards" / "m.png").resolve())}] and a.order == "given"


def test_bad_sources_are_reported(tmp_path):
    imgs, prompts = make_collection(tmp_path, n=1, corrupt=False)
    with pytest.raises(DataError, match="matches nothing"):
        list_jobs(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        list_jobs(str(tmp_path / "empty"))
    (tmp_path / "p2.jsonl").write_text(json.dumps({"image": "ghost.png", "objects": []}) + "\n")
    with pytest.raises(DataError, match="not in"):
        list_jobs(str(imgs), str(tmp_path / "p2.jsonl"))
    (tmp_path / "p3.jsonl").write_text('{"image": "im0.png"\n')
    with pytest.raises(DataError, match=r"p3.jsonl:1 is not valid JSON"):
        list_jobs(str(imgs), str(tmp_path / "p3.jsonl"))
    (tmp_path / "p4.jsonl").write_text(json.dumps({"image": "im0.png", "objects": {"box": [1, 2, 3, 4]}}) + "\n")
    with pytest.raises(DataError, match="must be a list of object records"):
        list_jobs(str(imgs), str(tmp_path / "p4.jsonl"))
    (imgs / "sub").mkdir()
    Image.open(imgs / "im0.png").save(imgs / "sub" / "im0.png")
    assert [j.id for j in list_jobs(str(imgs), pattern="**/*.png")] == ["im0", "sub__im0"]
    with pytest.raises(DataError, match="--format"):
        output_path(tmp_path, "a", "tiff")


# ----------------------------------------------------------------------------- index
def test_index_journal_lock_and_partials(tmp_path):
    out = tmp_path / "out"
    idx = BatchIndex(out, every=3600)
    idx.add({"id": "a", "status": "ok"})
    idx.add({"id": "b", "status": "failed", "error": "x"})
    assert not (out / "index.jsonl").exists()  # not yet rewritten, but the journal has both lines
    with open(out / "index.journal.jsonl", "a") as f:
        f.write('{"id": "c", "sta')  # a line torn by a kill is dropped
    assert sorted(read_records(out)) == ["a", "b"]
    with pytest.raises(OutputError, match="another layerkit batch run"):
        BatchIndex(out)
    idx.flush()
    assert [r["id"] for r in index_lines(out)] == ["a", "b"] and (out / "index.journal.jsonl").read_text() == ""
    idx.add({"id": "a", "status": "failed"})  # the last record of an id wins
    idx.close()
    assert read_records(out)["a"]["status"] == "failed" and not (out / "index.journal.jsonl").exists()
    BatchIndex(out).close()  # the lock is free again
    (out / ".im0.abc123.tmp").mkdir()
    (out / ".im1.psd.x.tmp.psd").write_bytes(b"")
    (out / ".im2.old").mkdir()
    assert remove_partials(out) == [".im0.abc123.tmp", ".im1.psd.x.tmp.psd", ".im2.old"] and not partials(out)


def test_settings_guard_old_outputs(tmp_path):
    spec = WorkerSpec(out=str(tmp_path / "out"))
    check_settings(tmp_path / "out", spec.settings(), resume=True)  # --resume on a new folder starts it
    (tmp_path / "out" / "batch.json").write_text(json.dumps(spec.settings()))
    with pytest.raises(OutputError, match="pass --resume"):
        check_settings(tmp_path / "out", spec.settings(), resume=False)
    other = WorkerSpec(out=spec.out, fmt="psd").settings()
    with pytest.raises(OutputError, match=r"other settings .*fmt: 'folder' -> 'psd'"):
        check_settings(tmp_path / "out", other, resume=True)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a layerkit batch output"):
        check_settings(tmp_path / "foreign", spec.settings(), resume=False)


# ----------------------------------------------------------------------------- worker
def test_worker_records_successes_and_one_line_failures(tmp_path):
    imgs, prompts = make_collection(tmp_path, n=1)
    jobs = {j.id: j for j in list_jobs(str(imgs), str(prompts))}
    worker = ImageWorker(WorkerSpec(out=str(tmp_path / "out"), fmt="psd"))
    (tmp_path / "out").mkdir()
    rec = worker(jobs["im0"])
    assert rec["status"] == "ok" and rec["error"] is None and rec["output"] == "im0.psd"
    assert rec["objects_found"] == 1 and [x["name"] for x in rec["layers"]] == ["background", "disc"]
    assert rec["objects"][0]["prompt"] == jobs["im0"].objects[0] and rec["recompose_psnr_db"] > 30
    assert (tmp_path / "out" / "im0.psd").is_file() and rec["worker"]["peak_rss_mb"] > 0
    bad = worker(jobs[BAD])
    assert bad["status"] == "failed" and "cannot read image" in bad["error"] and "\n" not in bad["error"]
    outside = worker(Job("far", jobs["im0"].image, [{"box": [500, 500, 600, 600]}]))
    assert outside["status"] == "failed" and "box" in outside["error"]
    none = worker(Job("none", jobs["im0"].image, None))
    assert none["status"] == "failed" and "--auto" in none["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im0.psd"]  # failures write nothing
    small = ImageWorker(WorkerSpec(out=str(tmp_path / "out"), overrides=["pipeline.max_pixels=1000"]))
    big = small(jobs["im0"])  # 48 x 64 = 3072 pixels
    assert big["status"] == "failed" and "max" in big["error"].lower() and "\n" not in big["error"]


# ----------------------------------------------------------------------------- local pool, end to end
@pytest.fixture(scope="module")
def pool_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    imgs, prompts = make_collection(root, n=4)
    out = root / "out"
    rc = main(["batch", str(imgs), "-o", str(out), "--prompts", str(prompts), "--workers", "2", "--quiet"])
    return root, imgs, prompts, out, rc


def test_local_pool_runs_every_image_and_reports_the_corrupt_one(pool_run):
    root, imgs, prompts, out, rc = pool_run
    assert rc == 1  # one image failed
    recs = {r["id"]: r for r in index_lines(out)}
    assert sorted(recs) == [BAD, "im0", "im1", "im2", "im3"]
    assert recs[BAD]["status"] == "failed" and "cannot read image" in recs[BAD]["error"]
    assert all(recs[f"im{i}"]["status"] == "ok" and (out / f"im{i}" / "layers.json").is_file() for i in range(4))
    assert len({recs[f"im{i}"]["worker"]["pid"] for i in range(4)} | {recs[BAD]["worker"]["pid"]}) == 2
    for r in recs.values():
        for layer in r["layers"]:
            assert (out / layer["file"]).is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["skipped"], summary["left"]) == (4, 1, 0, 0)
    assert summary["failures"] == {BAD: recs[BAD]["error"]}
    assert not partials(out) and not (out / "index.journal.jsonl").exists()
    check_complete_outputs(out)


def test_resume_skips_complete_images_and_redoes_the_rest(pool_run, capsys):
    root, imgs, prompts, out, _ = pool_run
    stamp = {i: (out / f"im{i}" / "layers.json").stat().st_mtime_ns for i in range(4)}
    # im3's record is lost (as if the driver died before recording it): its output must be redone
    lines = [r for r in index_lines(out) if r["id"] != "im3"]
    (out / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (out / ".im9.abcd.tmp").mkdir()  # a half-written output of a killed worker
    rc = main(["batch", str(imgs), "-o", str(out), "--prompts", str(prompts), "--resume", "--quiet"])
    assert rc == 1  # the corrupt image is tried again and fails again
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["skipped"], summary["done"], summary["failed"]) == (3, 1, 1)
    assert all((out / f"im{i}" / "layers.json").stat().st_mtime_ns == stamp[i] for i in range(3))
    assert (out / "im3" / "layers.json").stat().st_mtime_ns != stamp[3]
    assert [r["id"] for r in index_lines(out)] == [BAD, "im0", "im1", "im2", "im3"] and not partials(out)
    assert "1 done, 1 failed, 3 done before" in capsys.readouterr().err


def test_old_run_is_left_intact_without_resume(pool_run, capsys):
    root, imgs, prompts, out, _ = pool_run
    before = (out / "index.jsonl").read_text()
    assert main(["batch", str(imgs), "-o", str(out), "--prompts", str(prompts), "--quiet"]) == 2
    assert "pass --resume" in capsys.readouterr().err and (out / "index.jsonl").read_text() == before
    assert main(["batch", str(imgs), "-o", str(out), "--prompts", str(prompts), "--resume", "--format", "ora", "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_bad_engine_options(tmp_path, capsys, monkeypatch):
    imgs, prompts = make_collection(tmp_path, n=1, corrupt=False)
    base = ["batch", str(imgs), "-o", str(tmp_path / "o"), "--prompts", str(prompts), "--quiet"]
    for extra, msg in ((["--gpus-per-worker", "1"], "for --engine ray"), (["--address", "auto"], "for --engine ray"),
                       (["--workers", "0"], "at least 1"), (["--max-layers", "1"], "max_layers")):
        assert main(base + extra) == 2
        assert msg in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert main(base + ["--engine", "ray"]) == 2
    assert "pip install 'layerkit[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any(Path(tmp_path / "o").iterdir())


def test_bad_config_is_refused_before_anything_starts(tmp_path, capsys):
    imgs, prompts = make_collection(tmp_path, n=1, corrupt=False)
    rc = main(["batch", str(imgs), "-o", str(tmp_path / "o"), "--prompts", str(prompts), "--quiet",
               "--set", "matter.backend=no_such_matter"])
    assert rc == 2 and "unknown matter backend 'no_such_matter'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_worker_that_cannot_build_its_pipeline_stops_the_run(tmp_path, monkeypatch):
    """A failure only a worker sees (e.g. weights missing on that node) ends the run with its message."""
    from layerkit.batch.runner import run_batch

    imgs, prompts = make_collection(tmp_path, n=1, corrupt=False)
    spec = WorkerSpec(out=str(tmp_path / "o"), overrides=["matter.backend=no_such_matter"])
    with pytest.raises(ConfigError, match="unknown matter backend"):
        ImageWorker(spec)
    monkeypatch.setattr("layerkit.batch.runner.check_config", lambda spec: None)  # let it reach the workers
    with pytest.raises(ConfigError, match="a worker could not build the pipeline: unknown matter backend"):
        run_batch(list_jobs(str(imgs), str(prompts)), spec, progress=False)
    assert not partials(tmp_path / "o") and json.loads((tmp_path / "o" / "summary.json").read_text())["done"] == 0


def test_worker_threads_cap_the_segmenter_threads_unless_set():
    from layerkit.batch.worker import capped_overrides

    assert capped_overrides(WorkerSpec(out="unused", config="classical+peel", threads=1)) == ["segmenter.threads=1"]
    assert capped_overrides(WorkerSpec(out="unused", config="classical+peel", threads=4)) == []  # 2 already fits
    given = ["segmenter.threads=3"]
    assert capped_overrides(WorkerSpec(out="unused", config="classical+peel", overrides=given, threads=1)) == given
    worker = ImageWorker(WorkerSpec(out="unused", config="classical+peel", threads=1))
    assert worker.pipe.segmenter.threads == 1 and worker.pipe.segmenter.config()["threads"] == 1
