"""The report folder a run writes, its re-rendering with ``rerank-perf render``, and ``rerank-perf diff``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_rerank_perf.cli import main
from pytest_rerank_perf.report.folder import load_report
from pytest_rerank_perf.report.run_report import REPORT_FILE, ReportError, RunReport, merge_reports
from pytest_rerank_perf.scenarios import BUILT_IN

PNG = b"\x89PNG\r\n\x1a\n"
# A load result as the batcher benchmark stores it, so the report's load section renders without minutes of load.
LOAD_TEST = """
from pytest_rerank_perf.measurements.load import LoadResults

def test_load(rerank_session):
    point = lambda rate, p99: {"target_rate": rate, "arrival_rate": rate, "errors": 0, "pairs_per_s": rate * 10,
                               "latency": {"p50": p99 / 3, "p95": p99 / 1.5, "p99": p99}}
    rerank_session.add(LoadResults({"concurrent": {
        "scenario": "concurrent", "pairs_per_request": 10, "p99_target_s": 0.2, "reference": "predict-bs10",
        "servers": {
            "predict-bs10": {"max_rate": 20.0, "max_batch": 10, "points": [point(10.0, 0.05), point(20.0, 0.15),
                                                                         point(40.0, 0.9)]},
            "batcher-mb32-w2ms": {"max_rate": 40.0, "max_batch": 32, "points": [point(20.0, 0.06),
                                                                              point(40.0, 0.18), point(80.0, 1.2)]},
        },
        "closed_loop": [{"concurrency": c, "throughput_rps": 10.0 * c, "pairs_per_s": 100.0 * c,
                         "latency": {"p50": 0.01 * c, "p99": 0.02 * c}, "server": "batcher-mb32-w2ms"}
                        for c in (1, 4, 16)],
    }}))
"""
# Timed on a virtual clock (``pytest_rerank_perf/fakegpu/clock.py``): the slowdown the diff must flag shows against
# the base run whatever the host's speed, and the tiny twin's real forwards only need to be cheap.
MATRIX = (
    *("-p", "pytest_rerank_perf.fakegpu.clock", "--rerank-device", "cpu", "--rerank-pair-tokens", "32"),
    *("--rerank-num-pairs", "10", "--rerank-batch-sizes", "2,10", "--rerank-rounds", "5"),
)


@pytest.fixture
def run_dir(bench: pytest.Pytester) -> pytest.Pytester:
    bench.makepyfile(test_load=LOAD_TEST)
    return bench


def test_a_run_writes_the_report_folder_and_render_reproduces_it(run_dir: pytest.Pytester, tmp_path: Path) -> None:
    result = run_dir.runpytest(*MATRIX)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "report: reports/index.md*",  # the outcome first: where the whole report is
            "*scenario recommendations*",
            "*realtime*batch_size*",
            "*concurrent*batcher-mb32*",
        ]
    )
    folder = run_dir.path / "reports"
    for name in ("throughput.png", "load-concurrent.png", "concurrency-concurrent.png", "index.md", REPORT_FILE):
        assert (folder / name).is_file(), name
    assert (folder / "throughput.png").read_bytes().startswith(PNG)
    assert not (folder / "vram.png").exists()  # no VRAM figure on the CPU, and the report says so
    index = (folder / "index.md").read_text()
    assert "CPU FALLBACK" in index
    assert "No VRAM plot" in index
    assert "![Throughput vs batch size](throughput.png)" in index
    assert "| `batcher-mb32-w2ms` | 40.0 req/s |" in index
    assert "batch_size **" in index  # a real-time recommendation from the measured cells

    data = load_report(folder / REPORT_FILE).to_dict()
    assert {c["batch_size"] for c in data["cells"]} == {2, 10}
    assert all(c["device"] == "cpu" for c in data["cells"])
    assert [s["scenario"] for s in data["scenarios"]] == [s.name for s in BUILT_IN]

    assert main(["render", str(folder / REPORT_FILE), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.md").read_text() == index
    assert (tmp_path / "load-concurrent.png").read_bytes().startswith(PNG)


def test_diff_flags_a_slowdown_and_refuses_other_models(
    run_dir: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = run_dir.path / "reports"
    saved = run_dir.path / "saved"
    saved.mkdir()
    runs = {"base": (), "slow": ("--rerank-inject-slowdown", "0.6"), "other": ("--rerank-max-length", "256")}
    for name, extra in runs.items():
        assert run_dir.runpytest(*MATRIX, *extra).ret == 0
        shutil.copy(folder / REPORT_FILE, saved / f"{name}.json")
    capsys.readouterr()

    assert main(["diff", str(saved / "base.json"), str(saved / "base.json")]) == 0
    assert "PASS" in capsys.readouterr().out

    md = saved / "diff.md"
    code = main(
        [
            "diff",
            str(saved / "base.json"),
            str(saved / "slow.json"),
            "--threshold",
            "latency=20%",
            "--markdown",
            str(md),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "regression gate: FAIL" in out
    assert "REGRESSION" in out
    assert "| **REGRESSION** |" in md.read_text()

    assert main(["diff", str(saved / "base.json"), str(saved / "other.json")]) == 2
    assert "different models" in capsys.readouterr().err
    assert main(["diff", str(saved / "base.json"), str(saved / "base.json"), "--alpha", "2"]) == 2
    assert "--alpha 2.0: must be between 0 and 0.5" in capsys.readouterr().err


def test_saved_reports_are_read_strictly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_report(bad)
    bad.write_text(json.dumps({"benchmarks": [], "machine_info": {}}))
    with pytest.raises(ReportError, match="missing report_version"):
        load_report(bad)
    bad.write_text(json.dumps({"report_version": 99, "profile": {}, "model": {}, "cells": []}))
    with pytest.raises(ReportError, match="report version 99"):
        load_report(bad)
    assert main(["render", str(tmp_path / "absent.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    wrapped = tmp_path / "benchmark.json"  # pytest-benchmark's JSON carries the report as its `rerank` section
    wrapped.write_text(
        json.dumps({"benchmarks": [], "rerank": {"report_version": 3, "profile": {}, "model": {}, "cells": []}})
    )
    assert load_report(wrapped).cells == []


def test_reports_of_xdist_workers_merge_into_one_tagged_by_device() -> None:
    def worker(device: str, bs: int, status: str) -> RunReport:
        cells = [
            {
                "status": "ok",
                "num_pairs": 10,
                "batch_size": bs,
                "pairs_per_s": 100.0 * bs,
                "device": device,
                "latency_s": {"call": {"p99": 0.01}},
                "workload_id": "w",
            }
        ]
        change = -0.3 if status == "fail" else 0.0
        gate = {
            "status": status,
            "baseline_path": "baselines/x.json",
            "model_key": "k",
            "message": status,
            "warnings": [],
            "unmatched_cells": [],
            "comparisons": [
                {
                    "cell": f"w/bs{bs}",
                    "metric": "throughput",
                    "baseline": 100.0 * bs,
                    "now": 100.0 * bs * (1 + change),
                    "change": change,
                    "threshold": 0.05,
                    "p_value": 0.001,
                    "ci": None,
                    "verdict": "regression" if status == "fail" else "unchanged",
                }
            ],
        }
        data = {
            "report_version": 3,
            "device": device,
            "profile": {},
            "profile_summary": "p",
            "model": {},
            "cells": cells,
            "gate": gate,
            "gate_enforced": True,
            "load": {},
            "oom_boundaries": {},
        }
        return RunReport.from_dict(data, Path(f"xdist worker on {device}"))

    merged = merge_reports([worker("cuda:1", 8, "fail"), worker("cuda:0", 4, "pass")], BUILT_IN).to_dict()
    assert merged["devices"] == ["cuda:0", "cuda:1"]
    assert [(c["device"], c["batch_size"]) for c in merged["cells"]] == [("cuda:0", 4), ("cuda:1", 8)]
    assert merged["best_batch_size"] == {"w": 8}
    assert merged["gate"]["status"] == "fail"  # one worker's regression fails the merged gate
    assert merged["gate"]["regressions"] == 1
    assert len(merged["gate"]["comparisons"]) == 2
