"""The fail-closed gate end to end on the CPU tiny twin: another workload, an interrupted or failing recording,
pooled processes, and what pytest-benchmark's own JSON carries."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_rerank_perf.plugin.processes import run_child
from pytest_rerank_perf.store.reader import record_command

# Timed on a virtual clock (``pytest_rerank_perf/fakegpu/clock.py``): no verdict here depends on the host's speed, and
# the virtual machine's fingerprint is fixed (record, then compare, on one machine).
CLOCK = ("-p", "pytest_rerank_perf.fakegpu.clock")
MATRIX = (
    *(*CLOCK, "--rerank-device", "cpu", "--rerank-pair-tokens", "32"),
    *("--rerank-num-pairs", "12", "--rerank-batch-sizes", "4,12", "--rerank-rounds", "3"),
)
ONE_CELL = ("--rerank-batch-sizes", "12")  # where one cell shows what two would
LENIENT = ("--rerank-threshold", "throughput=500%", "--rerank-threshold", "latency=500%")


def _run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest(*MATRIX, *LENIENT, *args)


def _profiles(p: pytest.Pytester) -> list[Path]:
    return sorted((p.path / "baselines").glob("*.json"))


def test_a_run_of_another_workload_compares_nothing_and_fails_when_required(bench: pytest.Pytester) -> None:
    """The issue's CI case: a baseline at 32 tokens, a required and enforced gate at 64 tokens."""
    assert _run(bench, "--rerank-save-baseline").ret == 0
    result = _run(bench, "--rerank-pair-tokens", "64", "--rerank-require-baseline", "--rerank-gate", "enforce")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "regression gate: INCOMPLETE: compared nothing*",
            "workload fixed64-* (cells: n<pairs>/bs<batch size>)",
            "n12/bs4 *not compared *- *- *measured *not in the baseline",
            "n12/bs12 *not compared *",
            "in the baseline, not planned in this run: n12/bs4, n12/bs12 (workload fixed32-*)",
            "*FAILED: --rerank-require-baseline: not a full comparison*",
        ]
    )
    verdict = json.loads((bench.path / "reports" / "rerank-verdict.json").read_text())
    assert verdict["status"] == "incomplete"
    assert verdict["comparisons"] == []
    advisory = _run(bench, "--rerank-pair-tokens", "64")  # the CPU default reports it, and still says INCOMPLETE
    advisory.stdout.fnmatch_lines(["*regression gate: INCOMPLETE*"])


def test_a_partial_run_passes_only_without_require_baseline(bench: pytest.Pytester) -> None:
    assert _run(bench, "--rerank-save-baseline").ret == 0
    subset = ("--rerank-batch-sizes", "4", "--rerank-gate", "enforce")
    assert _run(bench, *subset).ret == 0
    required = _run(bench, *subset, "--rerank-require-baseline")
    assert required.ret == pytest.ExitCode.TESTS_FAILED
    required.stdout.fnmatch_lines(["*not a full comparison: 1 baseline cell(s) not planned in this run*"])


@pytest.mark.parametrize(
    ("extra", "ret", "reason"),
    [
        # pytest.exit takes the path of a Ctrl-C (exit status INTERRUPTED) without interrupting this outer run
        ("import pytest\n\ndef test_zz_stop():\n    pytest.exit('stop')\n", pytest.ExitCode.INTERRUPTED, "interrupted"),
        ("def test_zz_broken():\n    assert False\n", pytest.ExitCode.TESTS_FAILED, "1 test(s) failed"),
    ],
)
def test_an_unfinished_recording_never_writes_the_baseline(
    bench: pytest.Pytester, extra: str, ret: pytest.ExitCode, reason: str
) -> None:
    bench.makepyfile(test_zz=extra)
    result = _run(bench, "--rerank-save-baseline", "--rerank-force")
    assert result.ret == ret
    assert _profiles(bench) == []
    (side,) = (bench.path / "baselines").glob("*.json.unsaved-*")
    (section,) = json.loads(side.read_text())["models"].values()
    assert len(section["cells"]) == 2  # nothing lost: the cells it did measure are kept beside
    assert reason in (bench.path / "reports" / "report.json").read_text()


def test_pooled_processes_keep_each_process_median_and_measure_the_drift(
    bench: pytest.Pytester, virtual_clock: Callable[..., tuple[str, ...]]
) -> None:
    virtual_clock(drift=0.03)  # each process's forwards 3% faster or slower: between-process drift to measure
    recorded = _run(bench, *ONE_CELL, "--rerank-save-baseline", "--rerank-processes", "2", "-q")
    assert recorded.ret == 0
    # each pooled process announces itself and its end (nothing runs silently), under -q too
    recorded.stdout.fnmatch_lines(
        ["rerank-perf: pooled process 2 of 2: 1 cell*", "rerank-perf: pooled process 2 of 2: done in *"]
    )
    (path,) = _profiles(bench)
    (section,) = json.loads(path.read_text())["models"].values()
    for cell in section["cells"].values():
        assert cell["runs"] == 2
        assert len(cell["throughput"]["process_medians"]) == 2
    assert section["hardware"]["fingerprint"]["flops"] > 0
    again = _run(bench, *ONE_CELL, "--rerank-processes", "2", "--rerank-gate", "enforce")
    assert again.ret == 0, again.stdout.str()
    verdict = json.loads((bench.path / "reports" / "rerank-verdict.json").read_text())
    assert "measured" in verdict["drift"]
    assert {tuple(c["processes"]) for c in verdict["comparisons"]} == {(2, 2)}
    assert all(c["mdr"] is not None for c in verdict["comparisons"])


# A stand-in child: it fails if its scratch store still holds an earlier run's recording, else writes a report.
CHILD = """
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
if (out / "baselines").exists():
    sys.exit("already records: an earlier run's scratch store")
out.mkdir(parents=True, exist_ok=True)
(out / "report.json").write_text(json.dumps({"report_version": 3, "profile": {}, "model": {}, "cells": []}))
"""


def test_a_pooled_process_records_into_a_fresh_scratch_store(tmp_path: Path) -> None:
    """Recording again needs only --rerank-force: a pooled process's store is emptied before it starts, so the
    cells an earlier run's process recorded there never clash with its own."""
    out = tmp_path / "processes" / "process-1"
    (out / "baselines").mkdir(parents=True)
    (out / "baselines" / "cpu-x.json").write_text("{}")  # what the last pooled recording left
    config = types.SimpleNamespace(rootpath=tmp_path)
    command = [sys.executable, "-c", CHILD, str(out)]
    report = run_child(config, command, out, "pooled process 2 of 2", 0)  # type: ignore[arg-type]
    assert report.cells == []


def test_pytest_benchmark_json_names_the_workload_and_the_model(bench: pytest.Pytester) -> None:
    result = _run(bench, "--benchmark-json=bench.json")
    assert result.ret == 0
    data = json.loads((bench.path / "bench.json").read_text())
    names = sorted(b["name"] for b in data["benchmarks"])
    assert names == ["test_throughput[fixed32-n12-bs12]", "test_throughput[fixed32-n12-bs4]"]
    params = {json.dumps(b["params"], sort_keys=True) for b in data["benchmarks"]}
    assert '{"rerank_cell": {"batch_size": 4, "num_pairs": 12, "workload": "fixed32"}}' in params
    assert "UNSERIALIZABLE" not in json.dumps(data)
    report = json.loads((bench.path / "reports" / "report.json").read_text())
    assert data["rerank"]["model"]["key"] == report["model"]["key"]  # the content key: known once the model loads
    assert data["machine_info"]["rerank_model"] == "twin-tiny fp32 L512"  # what pytest-benchmark compares at start
    assert data["machine_info"]["rerank_profile_id"] == report["profile"]["profile_id"]


def test_the_record_hint_names_a_nox_session_only_where_there_is_one(tmp_path: Path) -> None:
    assert "--rerank-save-baseline" in record_command(tmp_path)
    assert "nox" not in record_command(tmp_path)
    (tmp_path / "noxfile.py").write_text("@nox.session(name='record-baseline')\n")
    assert record_command(tmp_path) == "nox -s record-baseline"


def test_a_failed_pooled_process_refuses_the_recording_and_says_where_the_cells_went(bench: pytest.Pytester) -> None:
    # the matrix fails in the pooled processes only (they run with --rerank-processes=1)
    pytester = bench
    pytester.makepyfile(
        test_bench=(pytester.path / "test_bench.py")
        .read_text()
        .replace("rerank_workload):", "rerank_workload, pytestconfig):")
        .rstrip()
        + '\n    assert pytestconfig.getoption("rerank_processes") != "1", "a pooled process fails"\n'
    )
    result = _run(pytester, *ONE_CELL, "--rerank-save-baseline", "--rerank-processes", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _profiles(pytester) == []
    result.stdout.fnmatch_lines(["*FAILED: not recorded: --rerank-processes 2: pooled process 2 of 2 failed*"])
    report = json.loads((pytester.path / "reports" / "report.json").read_text())
    assert "This run's cells were saved to baselines/" in report["failure"]
