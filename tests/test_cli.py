"""``rerank-perf``'s exit codes and messages: 0 pass, 1 regression, 2 bad input as one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.cli import build_parser, main
from pytest_rerank_perf.report.run_report import REPORT_FILE, RunReport
from pytest_rerank_perf.store.schema import section_from_cells

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
MODEL = {"key": "twin-tiny-fp32-512", "name": "twin-tiny", "dtype": "fp32", "max_length": 512}


def report_data() -> dict[str, Any]:
    """A small saved run with one measured cell, built through the report's own API."""
    samples = {"throughput": [100.0 + i for i in range(12)]}
    cell = {"status": "ok", "workload_id": "w-n10", "num_pairs": 10, "batch_size": 2, "device": "cpu"}
    cell |= {"samples": samples, "tokens_per_s": 1000.0, "pairs_per_s": 105.0, "latency_s": {"call": {"p99": 0.01}}}
    section = section_from_cells([cell], MODEL, {})
    profile = {"profile_id": "cpu-test"}
    return RunReport("now", "cpu", profile, "test box", MODEL, section=section).to_dict()


def benchmark_json(report: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's JSON of a run with the plugin active: the report is its ``rerank`` section."""
    return {"machine_info": {"node": "box"}, "commit_info": {}, "benchmarks": [], "rerank": report}


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(autouse=True)
def no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """No matplotlib in this process: a later in-process pytester run's sys.modules restore would drop the
    submodules it imported, and the next plot here would mix two copies of them (test_report covers the plots)."""
    monkeypatch.setattr("pytest_rerank_perf.report.folder.write_plots", lambda data, out_dir: [])


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return write_json(tmp_path / "reports" / REPORT_FILE, report_data())


def bad_input(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``argv``, expecting exit 2 and exactly one line on stderr; returns that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rerank-perf: error: ")
    return lines[0]


def test_diff_of_a_run_with_itself_passes(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(saved), str(saved)]) == 0
    assert "regression gate: PASS" in capsys.readouterr().out


@pytest.mark.parametrize("position", ["old", "new"])
def test_a_directory_names_the_report_inside(saved: Path, position: str, capsys: pytest.CaptureFixture[str]) -> None:
    pair = [str(saved.parent), str(saved)] if position == "old" else [str(saved), str(saved.parent)]
    line = bad_input(["diff", *pair], capsys)
    assert f"{saved.parent}: is a directory" in line
    assert str(saved) in line  # the fix: the report file inside it
    assert "is a directory" in bad_input(["render", str(saved.parent)], capsys)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PNG, "not a UTF-8 text file"),
        ("café".encode("latin-1"), "not a UTF-8 text file"),
        (b'{"report_version": 3, "profile": {}, "model": {}, "cells": 5}', "malformed report (cells"),
        (b'{"report_version": 3, "profile": {}, "model": "x", "cells": []}', "malformed report (model"),
        (b'{"report_version": 3, "profile": {}, "model": {}, "cells": [], "gate": {"x": 1}}', "malformed report"),
    ],
)
def test_a_file_that_is_no_report_is_bad_input(
    saved: Path, tmp_path: Path, content: bytes, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    for argv in (["diff", str(bad), str(saved)], ["diff", str(saved), str(bad)], ["render", str(bad)]):
        line = bad_input(argv, capsys)
        assert f"{bad}: " in line
        assert expected in line


def test_a_missing_file_is_bad_input(saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "absent.json"
    assert "no such file" in bad_input(["diff", str(saved), str(missing)], capsys)
    assert "no such file" in bad_input(["render", str(missing), "--out", str(tmp_path / "out")], capsys)


def test_an_unreadable_file_is_bad_input(
    saved: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    read_text = Path.read_text

    def refuse(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == saved:  # chmod does not stop root, so the refusal is injected
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    line = bad_input(["diff", str(saved), str(saved)], capsys)
    assert f"{saved}: permission denied" in line
    assert "chmod" in line


def test_markdown_into_a_new_folder_creates_it(saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "new" / "deeper" / "diff.md"
    assert main(["diff", str(saved), str(saved), "--markdown", str(md)]) == 0
    assert "regression gate" in md.read_text()
    assert capsys.readouterr().err == ""


def test_markdown_that_cannot_be_written_is_bad_input(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = bad_input(["diff", str(saved), str(saved), "--markdown", str(tmp_path)], capsys)
    assert f"--markdown {tmp_path}: cannot write there" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = bad_input(["diff", str(saved), str(saved), "--markdown", str(blocker / "diff.md")], capsys)
    assert "a file stands where a folder must go" in line


def test_render_never_writes_beside_a_pytest_benchmark_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    source = write_json(folder / "0001_run.json", benchmark_json(report_data()))
    line = bad_input(["render", str(source)], capsys)
    assert "pytest-benchmark JSON" in line
    assert "pass --out DIR" in line
    assert sorted(p.name for p in folder.iterdir()) == ["0001_run.json"]  # the storage folder is untouched
    out = tmp_path / "rendered"
    assert main(["render", str(source), "--out", str(out)]) == 0
    assert (out / REPORT_FILE).is_file()
    assert (out / "index.md").is_file()


def test_render_refuses_a_pytest_benchmark_storage_folder(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    under_dot_benchmarks = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    custom = tmp_path / "bench-storage"  # --benchmark-storage elsewhere: known by its files, not its name
    write_json(custom / "Linux-CPython-3.11-64bit" / "0001_run.json", benchmark_json(report_data()))
    for out in (under_dot_benchmarks, custom, custom / "Linux-CPython-3.11-64bit"):
        line = bad_input(["render", str(saved), "--out", str(out)], capsys)
        assert f"{out}: a pytest-benchmark storage folder" in line
        assert "pass --out DIR outside it" in line
        assert not (out / REPORT_FILE).exists()
    inside = write_json(under_dot_benchmarks / REPORT_FILE, report_data())  # a report.json copied into storage
    assert "storage folder" in bad_input(["render", str(inside)], capsys)


def test_render_refuses_an_out_that_is_a_file(saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = bad_input(["render", str(saved), "--out", str(blocker)], capsys)
    assert f"--out {blocker}: a file stands where a folder must go" in line


def test_render_of_a_report_json_rewrites_its_own_folder(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(saved)]) == 0
    assert (saved.parent / "index.md").is_file()
    assert f"wrote {saved}" in capsys.readouterr().out


@pytest.mark.parametrize("command", [[], ["render"], ["diff"], ["profiles"]])
def test_help_lists_the_exit_codes(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:\n  0  " in out  # RawDescriptionHelpFormatter keeps the epilog's lines
    assert "  2  bad input" in out
    if command not in (["render"], ["profiles"]):  # they judge nothing, so they never exit 1
        assert "  1  regression, or an incomplete comparison" in out


def test_every_argument_has_help() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices)
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help"


def test_usage_errors_still_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["diff", "only-one.json"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: NEW" in capsys.readouterr().err


def test_the_gpu_bench_report_folder_with_its_benchmark_json_is_no_storage(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``nox -s gpu-bench`` writes reports/benchmark.json beside report.json: rendering there stays allowed."""
    write_json(saved.parent / "benchmark.json", benchmark_json(report_data()))
    assert main(["render", str(saved)]) == 0
    write_json(saved.parent / "Linux-CPython-3.11-64bit" / "0001_abc.json", benchmark_json(report_data()))
    assert "pytest-benchmark storage folder" in bad_input(["render", str(saved)], capsys)
