"""``rerank-perf diff`` follows the gate's fail-closed rules: cells that vanished or now run out of memory are named,
and a run that compared nothing never passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.cli import main
from pytest_rerank_perf.measurements.matrix_result import MatrixResult
from pytest_rerank_perf.report.run_report import RunReport
from pytest_rerank_perf.store.schema import section_from_cells

MODEL = {"key": "twin:abc:fp32:L512", "name": "twin-tiny", "dtype": "fp32", "max_length": 512}


def _cell(n: int, bs: int, status: str = "ok", workload: str = "w") -> dict[str, Any]:
    cell: dict[str, Any] = {"status": status, "workload_id": f"{workload}-n{n}", "num_pairs": n, "batch_size": bs}
    if status == "ok":
        samples = {"throughput": [100.0 + i for i in range(12)]}
        cell |= {"samples": samples, "tokens_per_s": 1000.0, "pairs_per_s": 105.0, "device": "cpu"}
    else:
        cell["reason"] = "CUDA out of memory"
    return cell


def _save(path: Path, cells: list[dict[str, Any]]) -> Path:
    section = section_from_cells(cells, MODEL, {"profile_id": "cpu-test"})
    results = {MatrixResult.key: MatrixResult(cells)}
    report = RunReport("now", "cpu", {"profile_id": "cpu-test"}, "box", MODEL, results=results, section=section)
    path.write_text(json.dumps(report.to_dict()))
    return path


@pytest.fixture
def old(tmp_path: Path) -> Path:
    return _save(tmp_path / "old.json", [_cell(10, bs) for bs in (1, 4, 16)])


def test_vanished_cells_are_named_and_fail_a_required_full_comparison(
    old: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _save(tmp_path / "new.json", [_cell(10, 1)])
    assert main(["diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "in the baseline, not planned in this run: n10/bs4, n10/bs16 (workload w)" in out
    assert main(["diff", str(old), str(new), "--require-full"]) == 1
    assert "FAILED: --require-full: not a full comparison" in capsys.readouterr().out


def test_a_cell_that_now_runs_out_of_memory_fails_the_diff(
    old: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _save(tmp_path / "new.json", [_cell(10, 1), _cell(10, 4), _cell(10, 16, "oom")])
    assert main(["diff", str(old), str(new)]) == 1
    lost = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("n10/bs16 ")]
    assert lost == [
        ["n10/bs16", "LOST", "(regression)", "-", "measured", "OOM", "-", "-", "-", "CUDA", "out", "of", "memory"]
    ]
    every = _save(tmp_path / "every.json", [_cell(10, bs, "oom") for bs in (1, 4, 16)])
    assert main(["diff", str(old), str(every)]) == 1  # nothing measured at all is no reason to pass


def test_a_diff_of_different_workloads_compared_nothing(
    old: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _save(tmp_path / "new.json", [_cell(10, bs, workload="other") for bs in (1, 4, 16)])
    assert main(["diff", str(old), str(new)]) == 1
    assert "INCOMPLETE: compared nothing" in capsys.readouterr().out
