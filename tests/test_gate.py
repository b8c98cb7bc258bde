"""The regression gate end to end on the CPU tiny twin: record, re-run, slowdown, corrupt and clashing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rerank_perf.fakegpu.clock import ForwardCost

# 20% thresholds: a 30% slower forward (+30% batch latency) must fail, an unchanged one must pass. Every run is timed on
# a virtual clock (``pytest_rerank_perf/fakegpu/clock.py``): this host's slow spells exceed both margins, and on the
# virtual clock the verdicts are the same on any host. The virtual machine's fingerprint is fixed: one machine.
GATE_THRESHOLDS = ("--rerank-threshold", "throughput=20%", "--rerank-threshold", "latency=20%")
TOKENS = 32  # the tiny twin's real forwards only need to be cheap: their time is the virtual clock's
MATRIX = (
    *("-p", "pytest_rerank_perf.fakegpu.clock", "--rerank-device", "cpu", "--rerank-pair-tokens", str(TOKENS)),
    *("--rerank-num-pairs", "12", "--rerank-batch-sizes", "4,12", "--rerank-rounds", "6"),
)


def _run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest(*MATRIX, *GATE_THRESHOLDS, *args)


def _profile(p: pytest.Pytester) -> Path:
    files = sorted((p.path / "baselines").glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def test_record_then_rerun_passes_and_injected_slowdown_fails(bench: pytest.Pytester) -> None:
    recorded = _run(bench, "--rerank-save-baseline")
    assert recorded.ret == 0
    path = _profile(bench)
    assert path.name.startswith("cpu-")
    assert path.name.endswith("-1t.json")
    recorded.stdout.fnmatch_lines(["*baseline recorded*", f"*git add baselines/{path.name}*"])
    data = json.loads(path.read_text())
    (section,) = data["models"].values()
    assert section["identity"]["source"] == "twin"
    assert sorted(c["batch_size"] for c in section["cells"].values()) == [4, 12]
    cost = ForwardCost()
    for cell in section["cells"].values():  # each forward lasted its virtual cost (within its noise), not host time
        expected = cost.base_s + cost.per_token_s * cell["batch_size"] * TOKENS
        assert cell["latency"]["median"] == pytest.approx(expected, rel=0.1), cell["latency"]

    again = _run(bench)
    assert again.ret == 0, again.stdout.str()
    # the verdict first in the summary, the unchanged cells counted, not listed; then what was measured
    again.stdout.fnmatch_lines(
        [
            "*= rerank-perf summary =*",
            "regression gate: PASS*",
            "2 cells unchanged (within thresholds, or not significant)",
            "*- rerank-perf measurements -*",
            "num_pairs=12 *",
        ]
    )
    assert "n12/bs" not in again.stdout.str()
    verdict = json.loads((bench.path / "reports" / "rerank-verdict.json").read_text())
    assert verdict["status"] == "pass"
    assert {c["metric"] for c in verdict["comparisons"]} == {"throughput", "latency"}

    advisory = _run(bench, "--rerank-inject-slowdown", "0.3")  # the CPU default: report, do not fail
    assert advisory.ret == 0
    advisory.stdout.fnmatch_lines(["*regression gate: FAIL*", "*ADVISORY*--rerank-gate enforce*"])

    slow = _run(bench, "--rerank-inject-slowdown", "0.3", "--rerank-gate", "enforce")
    assert slow.ret == pytest.ExitCode.TESTS_FAILED
    slow.stdout.fnmatch_lines(  # every moved cell listed by its short name, under its workload
        [
            "regression gate: FAIL*",
            "workload fixed32-* (cells: n<pairs>/bs<batch size>)",
            "cell *verdict *metric *baseline *now *change *95% CI *threshold *why",
            "n12/bs4 *REGRESSION *latency*",
            "n12/bs12 *REGRESSION *",
            "0 cells unchanged*",
        ]
    )
    slow.assert_outcomes(passed=2)  # every test passed: the gate alone fails the run
    summary = (bench.path / "reports" / "rerank-summary.md").read_text()
    assert "FAIL" in summary
    assert "| **REGRESSION** |" in summary
    verdict = json.loads((bench.path / "reports" / "rerank-verdict.json").read_text())
    assert {c["cell"] for c in verdict["comparisons"] if c["verdict"] == "regression"} == {
        c["cell"] for c in verdict["comparisons"]
    }  # every cell slowed down is caught


def test_recording_refuses_to_overwrite_without_force_and_keeps_other_cells(bench: pytest.Pytester) -> None:
    assert _run(bench, "--rerank-save-baseline").ret == 0
    path = _profile(bench)
    before = path.read_bytes()

    refused = _run(bench, "--rerank-save-baseline")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stdout.fnmatch_lines(["*already records*nothing was overwritten*--rerank-force*"])
    assert path.read_bytes() == before

    # --force re-measures one cell only; the other keeps its recorded values
    (section,) = json.loads(before)["models"].values()
    old = {c["batch_size"]: c for c in section["cells"].values()}
    assert _run(bench, "--rerank-save-baseline", "--rerank-force", "-k", "bs12").ret == 0
    (section,) = json.loads(path.read_text())["models"].values()
    new = {c["batch_size"]: c for c in section["cells"].values()}
    assert new[4] == old[4]
    assert new[12]["recorded_at"] >= old[12]["recorded_at"]
    assert new[12]["throughput"]["samples"] != old[12]["throughput"]["samples"]


def test_corrupt_baseline_is_a_clear_error_and_the_file_is_untouched(bench: pytest.Pytester) -> None:
    assert _run(bench, "--rerank-save-baseline").ret == 0
    path = _profile(bench)
    data = json.loads(path.read_text())
    (key,) = data["models"]
    cell = next(iter(data["models"][key]["cells"]))
    data["models"][key]["cells"][cell]["throughput"]["median"] = "fast"
    path.write_text(json.dumps(data))
    corrupt = path.read_bytes()

    result = _run(bench)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*baseline*{path.name}*field models*cells*throughput.median*positive*"])
    assert path.read_bytes() == corrupt

    path.write_text('{"schema_version": 1, "profile_id": ')  # truncated by hand
    result = _run(bench)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*not valid JSON*git checkout*"])


def test_missing_baseline_names_the_record_command_and_can_be_required(bench: pytest.Pytester) -> None:
    result = _run(bench)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*regression gate: NO-BASELINE*record one with `pytest <your benchmarks> --rerank-save-*"]
    )
    assert "nox -s" not in result.stdout.str()  # no such session outside this repository
    required = _run(bench, "--rerank-require-baseline")
    assert required.ret == pytest.ExitCode.TESTS_FAILED
    required.stdout.fnmatch_lines(["*FAILED: --rerank-require-baseline*"])


def test_a_different_model_identity_is_never_compared(bench: pytest.Pytester) -> None:
    assert _run(bench, "--rerank-save-baseline").ret == 0
    other = _run(bench, "--rerank-max-length", "256")  # another identity key: L256
    assert other.ret == 0
    other.stdout.fnmatch_lines(["*NO-BASELINE*:L256*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rerank-threshold", "speed=5%"], "unknown metric 'speed'"),
        (["--rerank-threshold", "throughput"], "write [PATTERN:]METRIC=VALUE"),
        (["--rerank-threshold", "throughput=fast"], "is not a number"),
        (["--rerank-threshold", "throughput=-5%"], "must be above 0"),
        (["--rerank-alpha", "0.7"], "--rerank-alpha 0.7: must be between 0 and 0.5"),
        (["--rerank-inject-slowdown", "x"], "--rerank-inject-slowdown"),
        (["--rerank-cpu-threads", "0"], "--rerank-cpu-threads 0: must be at least 1"),
        (["--rerank-gate", "strict"], "--rerank-gate 'strict': choose one of auto, enforce, advisory, off"),
    ],
)
def test_bad_gate_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
