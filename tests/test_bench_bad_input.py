"""Benchmark scripts given a data folder that is not there: one line naming it, exit code 2, nothing written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import load_benchmark

from layerkit.errors import DataError, one_line_errors


@pytest.mark.parametrize("name", ["completion", "ordering", "cut_box", "multilayer"])
def test_a_missing_data_folder_is_one_line_and_exit_2(name: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_benchmark(name)
    missing, out = tmp_path / "no_such_data", tmp_path / "out"
    argv = [str(missing), "-o", str(out)]
    if name == "multilayer":  # reads sys.argv
        monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
        code = bench.main()
    else:
        code = bench.main(argv)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{name}.py: ") and "no_such_data" in err[0]
    assert not out.exists()


def test_one_line_errors_passes_results_and_other_errors_through() -> None:
    @one_line_errors("x.py")
    def main(fail: Exception | None = None) -> int:
        if fail is not None:
            raise fail
        return 0

    assert main() == 0
    assert main(DataError("bad folder")) == 2
    with pytest.raises(ZeroDivisionError):  # a bug is not a user error: it still shows its traceback
        main(ZeroDivisionError())


@pytest.mark.parametrize("item", ["{missing}={tmp}", "{tmp}", "{data}={missing}"])
def test_ordering_fit_names_a_bad_data_cache_pair(item: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from layerkit.cli import main as cli

    src, data = tmp_path / "proc", tmp_path / "stacks"
    assert load_benchmark("procedural_data").main(["-o", str(src), "--objects", "2", "--backgrounds", "1"]) == 0
    assert cli(["make-dataset", "--fg-dir", str(src / "fg"), "--bg-dir", str(src / "bg"), "--objects", "2",
                "--n", "1", "-o", str(data)]) == 0
    capsys.readouterr()  # the two scripts' progress
    out = tmp_path / "fit.json"
    arg = item.format(missing=tmp_path / "no_such", tmp=tmp_path, data=data)
    assert load_benchmark("ordering_fit").main([arg, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ordering_fit.py: ")
    assert not out.exists()


def test_procedural_data_refuses_zero_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "proc"
    assert load_benchmark("procedural_data").main(["-o", str(out), "--objects", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err and not out.exists()
