"""A/B units: the SPEC parser, the pairing order, the paired statistics, the verdict and its exit codes, and the
sides made runnable (environments stood in for: no pip, no network)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pytest_rerank_perf.ab.judge import ChildRun, judge, read_child, settings_for
from pytest_rerank_perf.ab.paired import compare_pairs, min_detectable, paired_t
from pytest_rerank_perf.ab.result import ABResult, MissingCell
from pytest_rerank_perf.ab.schedule import BASE, HEAD, pair_orders
from pytest_rerank_perf.ab.sides import SideError, build_env, prepare
from pytest_rerank_perf.ab.spec import parse_spec
from pytest_rerank_perf.errors import RerankPerfError, UsageError
from pytest_rerank_perf.report.run_report import RunReport
from pytest_rerank_perf.store.schema import BaselineCell, MetricSummary, ModelBaseline

# --- SPEC --------------------------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A scratch checkout of the project's shape, two commits, a tag and a branch."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text("before the package\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (root / "pytest_rerank_perf").mkdir(parents=True)
    (root / "benchmarks").mkdir()
    (root / "pytest_rerank_perf" / "__init__.py").write_text("")
    (root / "benchmarks" / "test_throughput_matrix.py").write_text("# one\n")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "two")
    _git(root, "tag", "v1")
    return root


def test_a_spec_is_the_tree_a_ref_a_directory_or_pip(repo: Path, tmp_path: Path) -> None:
    assert parse_spec("--rerank-ab-base", ".", repo).kind == "tree"
    ref = parse_spec("--rerank-ab-base", "v1", repo)
    assert (ref.kind, ref.commit) == ("ref", _git(repo, "rev-parse", "HEAD"))
    assert parse_spec("--rerank-ab-base", "HEAD~1", repo).commit == _git(repo, "rev-parse", "HEAD~1")
    assert parse_spec("--rerank-ab-base", str(repo), repo).kind == "dir"  # a directory wins over a ref
    pip = parse_spec("--rerank-ab-head", "pip:sentence-transformers==6.2.0, transformers<5.25", repo)
    assert (pip.kind, pip.requirements) == ("pip", ("sentence-transformers==6.2.0", "transformers<5.25"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("no-such-branch", "not a commit of the repository at .* nor a directory"),
        ("pip:", "no requirement after 'pip:'"),
        ("pip:torch==>2", "is not a pip requirement"),
    ],
)
def test_a_bad_spec_is_one_usage_error_naming_the_forms(repo: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_spec("--rerank-ab-base", text, repo)


def test_a_directory_without_a_checkout_and_a_ref_outside_git_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="holds no checkout of pytest-rerank-perf"):
        parse_spec("--rerank-ab-head", str(tmp_path), tmp_path)
    with pytest.raises(UsageError, match="which is no git repository"):
        parse_spec("--rerank-ab-head", "main", tmp_path)


# --- the sides ---------------------------------------------------------------------------------------------------


def test_a_ref_side_is_its_commit_extracted_once_and_run_from_it(repo: Path, tmp_path: Path) -> None:
    spec = parse_spec("--rerank-ab-base", "HEAD~1", repo)
    cache = tmp_path / "cache"
    with pytest.raises(SideError, match="holds no pytest_rerank_perf/"):  # the first commit predates the package
        prepare(BASE, spec, repo, cache, print)
    side = prepare(HEAD, parse_spec("--rerank-ab-head", "v1", repo), repo, cache, print)
    assert side.root == cache / "checkouts" / side.commit
    assert (side.root / "benchmarks" / "test_throughput_matrix.py").read_text() == "# one\n"
    assert side.env({"PYTHONPATH": "x"})["PYTHONPATH"].split(":") == [str(side.root), "x"]
    (side.root / "marker").write_text("")  # reused, not extracted again
    again = prepare(HEAD, parse_spec("--rerank-ab-head", "v1", repo), repo, cache, print)
    assert (again.root / "marker").exists()
    tree = prepare(BASE, parse_spec("--rerank-ab-base", ".", repo), repo, cache, print)
    assert (tree.root, tree.dirty) == (repo, False)
    (repo / "benchmarks" / "test_throughput_matrix.py").write_text("# changed\n")
    assert prepare(BASE, parse_spec("--rerank-ab-base", ".", repo), repo, cache, print).dirty is True


def test_a_pip_environment_is_built_once_and_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def venv_then(pip_code: int):  # a stand-in for venv and pip: makes the venv's layout, then pip's exit code
        def run(command: list[str]) -> subprocess.CompletedProcess[str]:
            calls.append(command)
            if command[1:3] == ["-m", "venv"]:
                venv = Path(command[3])
                (venv / "bin").mkdir(parents=True)
                (venv / "bin" / "python").write_text("")
                (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
                return subprocess.CompletedProcess(command, 0, "", "")
            return subprocess.CompletedProcess(command, pip_code, "", "ERROR: No matching distribution")

        return run

    reqs = ("sentence-transformers==6.2.0",)
    with pytest.raises(SideError, match=r"would not build .* offline\?"):
        build_env(reqs, tmp_path, print, venv_then(1))
    assert not list((tmp_path / "envs").iterdir())  # no half-built environment to reuse

    def interrupted_pip(command: list[str]) -> subprocess.CompletedProcess[str]:
        if command[1:3] == ["-m", "pip"]:
            raise KeyboardInterrupt
        return venv_then(0)(command)

    with pytest.raises(KeyboardInterrupt):
        build_env(reqs, tmp_path, print, interrupted_pip)
    assert not list((tmp_path / "envs").iterdir())  # Ctrl-C in pip: nothing half-built either
    python = build_env(reqs, tmp_path, print, venv_then(0))
    assert calls[-1][-1] == "sentence-transformers==6.2.0"
    pth = next(python.parent.parent.glob("lib/*/site-packages/_rerank_ab_parent.pth")).read_text()
    assert "site-packages" in pth  # sees this environment's packages behind its own
    calls.clear()
    assert build_env(reqs, tmp_path, print, venv_then(1)) == python  # reused: nothing runs
    assert calls == []


# --- the pairing order -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pairs", [2, 5, 6, 11])
def test_pair_orders_are_balanced_seeded_and_each_a_base_and_a_head(pairs: int) -> None:
    orders = pair_orders(pairs, seed=3)
    assert len(orders) == pairs
    assert all(sorted(o) == [BASE, HEAD] for o in orders)
    base_first = sum(o[0] == BASE for o in orders)
    assert abs(base_first - (pairs - base_first)) <= pairs % 2
    assert orders == pair_orders(pairs, seed=3)
    assert len({tuple(pair_orders(12, seed=s)) for s in range(5)}) > 1  # the order is random, by seed


# --- the paired statistics ---------------------------------------------------------------------------------------


def _rounds(rng: np.random.Generator, centre: float, pairs: int, spread: float = 0.03) -> list[list[float]]:
    """Rounds of ``pairs`` processes: each process off by its own factor (sd ``spread``), rounds 1% apart."""
    return [list(centre * rng.lognormal(0, spread) * rng.lognormal(0, 0.01, 20)) for _ in range(pairs)]


def test_a_known_small_shift_is_found_and_its_size_estimated() -> None:
    rng = np.random.default_rng(0)
    base = _rounds(rng, 100.0, 8, spread=0.01)
    head = [[x * 0.92 for x in r] for r in _rounds(rng, 100.0, 8, spread=0.01)]  # 8% fewer pairs/s
    c = compare_pairs("w-n10/bs8", "throughput", base, head, threshold=0.03, alpha=0.01)
    assert c.verdict == "regression"
    assert c.ci is not None
    assert c.ci[0] < -0.08 < c.ci[1]
    assert c.p_value is not None
    assert c.p_value < 0.01
    assert c.mdr is not None
    assert c.mdr < 0.08


def test_a_a_with_identical_data_passes_and_a_shift_under_the_threshold_is_unchanged() -> None:
    rng = np.random.default_rng(1)
    base = _rounds(rng, 100.0, 4)
    same = compare_pairs("c", "throughput", base, base, threshold=0.05, alpha=0.01)
    assert (same.verdict, same.change, same.p_value) == ("unchanged", 0.0, 1.0)
    small = compare_pairs("c", "latency", base, [[x * 1.03 for x in r] for r in base], threshold=0.05, alpha=0.01)
    assert small.p_value == 0.0
    assert small.verdict == "unchanged"


def test_noise_alone_rarely_reads_as_a_regression() -> None:
    """A/A over 400 simulated runs of 6 pairs with 5% per-process spread: at most 1% false alarms."""
    rng = np.random.default_rng(2)
    alarms = sum(
        compare_pairs("c", "throughput", _rounds(rng, 1.0, 6, 0.05), _rounds(rng, 1.0, 6, 0.05), 0.05, 0.01).verdict
        == "regression"
        for _ in range(400)
    )
    assert alarms <= 4


def test_the_paired_t_test_and_the_minimum_detectable_regression() -> None:
    test = paired_t([0.10, 0.12, 0.08, 0.11])
    assert test is not None
    assert test.p_up < 0.001 < 0.999 < test.p_down
    assert paired_t([0.1]) is None  # one pair: no spread, no test
    assert paired_t([0.05, 0.05]).p_up == 0.0  # type: ignore[union-attr]
    # more pairs, smaller spread: a smaller regression is detectable; never below the threshold
    assert min_detectable(0.05, 10, 0.01, 0.05, True) < min_detectable(0.05, 4, 0.01, 0.05, True)  # type: ignore[operator]
    assert min_detectable(0.0, 4, 0.01, 0.05, True) == pytest.approx(0.05)
    assert min_detectable(0.05, 1, 0.01, 0.05, True) is None
    # t quantiles (9 dof): (2.821 + 1.833) x 0.05 / sqrt(10), as a drop in throughput
    assert min_detectable(0.05, 10, 0.01, 0.0, True) == pytest.approx(-math.expm1(-4.654 * 0.05 / math.sqrt(10)), 1e-3)


# --- the verdict -------------------------------------------------------------------------------------------------


def _section(cells: dict[str, float], key: str = "twin:x") -> ModelBaseline:
    made = {}
    for name, rate in cells.items():
        workload, batch = name.rsplit("/bs", 1)
        rounds = [rate * f for f in (0.99, 1.0, 1.01, 1.0, 0.995)]
        made[name] = BaselineCell(
            workload, 10, int(batch), 5, {"throughput": MetricSummary.of(rounds, "pairs/s", ci=False)}, {}, 1.0, "t"
        )
    return ModelBaseline({"key": key}, {}, {"torch": "2.13.0"}, "t", made)


def _run(cells: dict[str, float], key: str = "twin:x", bs16: str | None = None) -> ChildRun:
    """A process that measured ``cells``; ``bs16``: what it did with cell w-n10/bs16 instead."""
    status = {c: "ok" for c in cells} | ({"w-n10/bs16": bs16} if bs16 else {})
    return ChildRun(_section(cells, key), status, key, {"torch": "2.13.0"})


def _result() -> ABResult:
    return ABResult(base={"spec": "."}, head={"spec": "."}, pairs=3, threshold=0.05)


SETTINGS = settings_for("cpu", (), 0.01, 0.05)


def test_exit_codes_pass_regression_and_could_not_judge() -> None:
    same = [(_run({"w-n10/bs8": 100.0}), _run({"w-n10/bs8": 100.0 * f})) for f in (1.0, 1.002, 0.998)]
    passed = judge(_result(), same, SETTINGS)
    assert (passed.status, passed.exit_code) == ("pass", 0)
    slower = [(_run({"w-n10/bs8": 100.0}), _run({"w-n10/bs8": f})) for f in (80.0, 81.0, 79.0)]
    failed = judge(_result(), slower, SETTINGS)
    assert (failed.status, failed.exit_code) == ("fail", 1)
    assert failed.summary_lines()[0].startswith("A/B: FAIL (exit 1): 1 regression(s)")
    nothing = judge(_result(), [], SETTINGS)
    assert (nothing.status, nothing.exit_code) == ("no-verdict", 125)
    crashed = _result()
    crashed.failure = "A/B pair 2 of 3: head failed (exit 1)"
    assert crashed.exit_code == 125
    assert "could not judge" in crashed.verdict_line()


def test_fail_closed_other_models_a_cell_one_side_lacks_and_a_cell_lost_to_oom() -> None:
    other = judge(_result(), [(_run({"w-n10/bs8": 1.0}), _run({"w-n10/bs8": 1.0}, key="real:y"))] * 2, SETTINGS)
    assert other.exit_code == 125
    assert "different models" in (other.failure or "")
    one_sided = [(_run({"w-n10/bs8": 1.0, "w-n10/bs16": 1.0}), _run({"w-n10/bs8": 1.0}, bs16="error"))] * 2
    lacking = judge(_result(), one_sided, SETTINGS)
    assert lacking.missing == [MissingCell("w-n10/bs16", "ok", "error")]
    assert lacking.exit_code == 125
    oom = [(_run({"w-n10/bs8": 1.0, "w-n10/bs16": 1.0}), _run({"w-n10/bs8": 1.0}, bs16="oom"))] * 2
    assert judge(_result(), oom, SETTINGS).exit_code == 1  # the head lost a cell to out-of-memory: a regression
    both = [(_run({"w-n10/bs8": 1.0}, bs16="oom"), _run({"w-n10/bs8": 1.0}, bs16="oom"))] * 2
    assert judge(_result(), both, SETTINGS).exit_code == 0  # out of memory on both sides: the same
    flaky = [
        (_run({"w-n10/bs8": 1.0, "w-n10/bs16": 1.0}), _run({"w-n10/bs8": 1.0}, bs16="oom")),
        (_run({"w-n10/bs8": 1.0}, bs16="oom"), _run({"w-n10/bs8": 1.0}, bs16="oom")),
    ]
    assert judge(_result(), flaky, SETTINGS).exit_code == 125  # the base measured it once: not the same


def test_a_metric_some_processes_lack_is_a_gap_not_a_comparison_quietly_dropped() -> None:
    full = _run({"w-n10/bs8": 100.0})
    bare = _run({"w-n10/bs8": 100.0})
    assert bare.section is not None
    bare.section.cells["w-n10/bs8"].samples.clear()  # this head process left no throughput rounds
    result = judge(_result(), [(full, _run({"w-n10/bs8": 100.0})), (full, bare)], SETTINGS)
    assert result.missing == [MissingCell("w-n10/bs8 throughput", "in 2 of 2 processes", "in 1 of 2 processes")]
    assert (result.comparisons, result.exit_code) == ([], 125)


def test_the_result_round_trips_through_the_report_and_names_what_differs(tmp_path: Path) -> None:
    pairs = [(_run({"w-n10/bs8": 100.0}), _run({"w-n10/bs8": f})) for f in (80.0, 81.0, 79.0)]
    result = judge(_result(), pairs, SETTINGS)
    result.head["software"] = {"torch": "2.14.0"}
    report = RunReport("now", "cpu", {}, "cpu-x", {}, results={"ab": result})
    again = RunReport.from_dict(json.loads(json.dumps(report.to_dict())), tmp_path).result(ABResult)
    assert json.dumps(again.report_fields()) == json.dumps(result.report_fields())
    assert again.differing_versions() == {"torch": ("2.13.0", "2.14.0")}
    lines = again.summary_lines()
    assert lines[0].startswith("A/B: FAIL")
    assert "versions that differ: torch 2.13.0 -> 2.14.0" in lines
    assert any(line.startswith("n10/bs8") and "REGRESSION" in line for line in lines)  # short names, moved only


def test_a_childs_report_is_read_for_its_section_statuses_and_model(tmp_path: Path) -> None:
    section = _section({"w-n10/bs8": 100.0})
    data = {
        "model": {"key": "twin:x"},
        "cells": [{"workload_id": "w-n10", "batch_size": 16, "status": "oom"}],
        "section": section.to_dict(),
    }
    (tmp_path / "report.json").write_text(json.dumps(data))
    run = read_child(tmp_path / "report.json")
    assert run.model_key == "twin:x"
    assert run.statuses == {"w-n10/bs16": "oom"}
    assert run.section is not None
    assert list(run.section.cells) == ["w-n10/bs8"]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RerankPerfError, match="not a readable rerank-perf report"):
        read_child(tmp_path / "bad.json")


def test_auto_pairs_and_mode_follow_the_device_and_what_was_given_stays() -> None:
    from pytest_rerank_perf.plugin.options import ABPlan

    auto = ABPlan(".", ".", None, 0.05, "auto")
    assert (auto.resolved(gpu=True, cores=16).pairs, auto.resolved(gpu=True, cores=16).mode) == (6, "interleaved")
    assert (auto.resolved(gpu=False, cores=2).pairs, auto.resolved(gpu=False, cores=2).mode) == (10, "duet")
    assert auto.resolved(gpu=False, cores=1).mode == "interleaved"  # a duet needs a core a side
    given = ABPlan(".", ".", 3, 0.05, "interleaved")
    assert given.resolved(gpu=False, cores=2) == given


def test_in_a_duet_each_side_takes_each_core_in_turn() -> None:
    from pytest_rerank_perf.plugin.ab import duet_core

    base = [duet_core(i, BASE, [0, 1]) for i in range(1, 7)]
    head = [duet_core(i, HEAD, [0, 1]) for i in range(1, 7)]
    assert base == [1, 0, 1, 0, 1, 0]
    assert all(b != h for b, h in zip(base, head, strict=True))


def test_planned_cells_not_reported_throttled_or_skipped_on_both_sides_are_gaps() -> None:
    pairs = [(_run({"w-n10/bs8": 100.0}), _run({"w-n10/bs8": 100.0}))] * 2
    fewer = judge(_result(), pairs, SETTINGS, planned=2)
    assert (fewer.exit_code, fewer.failure) == (125, "2 cells planned, the sides' processes reported 1")
    skipped = [(_run({"w-n10/bs8": 1.0}, bs16="skipped"), _run({"w-n10/bs8": 1.0}, bs16="skipped"))] * 2
    assert judge(_result(), skipped, SETTINGS).missing == [MissingCell("w-n10/bs16", "skipped", "skipped")]
    hot = ChildRun(_section({"w-n10/bs8": 100.0}), {"w-n10/bs8": "throttled"}, "twin:x", {})
    throttled = judge(_result(), [(_run({"w-n10/bs8": 100.0}), hot)] * 2, SETTINGS)
    assert (throttled.missing, throttled.exit_code) == ([MissingCell("w-n10/bs8", "ok", "throttled")], 125)


def test_the_ab_threshold_is_not_overridden_by_the_gates_rules_for_timed_metrics() -> None:
    from pytest_rerank_perf.gate.thresholds import ThresholdRule

    rules = (ThresholdRule("*", "throughput", 0.5), ThresholdRule("*", "vram", 0.2))
    settings = settings_for("cuda", rules, 0.01, 0.05)
    assert settings.threshold("w-n10/bs8", "throughput") == 0.05
    assert settings.threshold("w-n10/bs8", "vram") == 0.2


def test_the_ab_plot_names_a_variant_cell_by_its_short_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_rerank_perf.report import ab_plot

    seen: list[list[str]] = []

    def keep(fig, out_dir, name):  # type: ignore[no-untyped-def]
        seen.append([t.get_text() for t in fig.axes[0].get_yticklabels()])
        return name

    monkeypatch.setattr(ab_plot, "save", keep)
    row = {"cell": "w-s0-n50/bs16+token-sorted", "metric": "throughput", "change": -0.1, "ratios": [0.9, 0.9]}
    row |= {"ci": [-0.12, -0.08], "threshold": 0.05, "p_value": 0.001, "verdict": "regression"}
    report = {"ab": {"comparisons": [row], "base": {"spec": "."}, "head": {"spec": "."}, "status": "fail"}}
    ab_plot.plot_ab(report, tmp_path)
    assert seen == [["n50/bs16+token-sorted throughput"]]
