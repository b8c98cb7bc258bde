"""The gate fails closed: every planned cell the baseline holds is compared, or the verdict says why not."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from pytest_rerank_perf.gate.judge import gate, planned_cells
from pytest_rerank_perf.gate.machine import machine_difference
from pytest_rerank_perf.gate.outcome import GateReport
from pytest_rerank_perf.gate.thresholds import GateSettings
from pytest_rerank_perf.gate.verdict import format_gate, gate_table
from pytest_rerank_perf.machine import device as dev
from pytest_rerank_perf.machine.fingerprint import Fingerprint, measure
from pytest_rerank_perf.store.schema import BaselineCell, MetricSummary, ModelBaseline

CPU = GateSettings.for_device("cpu")
WORKLOAD = "fixed256-quniform8-24-latin+cjk-dall-s0"


def _cell(n: int, bs: int, scale: float = 1.0, seed: int = 0) -> BaselineCell:
    rng = np.random.default_rng(seed + 100 * bs + n)
    samples = list(scale * 500 * np.exp(rng.normal(0, 0.01, 20)))
    return BaselineCell(
        workload_id=f"{WORKLOAD}-n{n}",
        num_pairs=n,
        batch_size=bs,
        rounds=20,
        samples={"throughput": MetricSummary.of(samples, "pairs/s", ci=False)},
        values={"vram": None, "energy": None},
        tokens_per_s=1000.0,
        recorded_at="2026-11-25T00:00:00Z",
    )


def _section(*cells: BaselineCell, flops: float = 5e10) -> ModelBaseline:
    fingerprint = {"gemm": "fp32 512x512x512 on cpu", "flops": flops, "noise": 0.01}
    return ModelBaseline(
        identity={"key": "twin:abc:fp32:L512"},
        hardware={"profile_id": "cpu-test-2c-1t", "kind": "cpu", "gpu": None, "fingerprint": fingerprint},
        software={},
        recorded_at="2026-11-25T00:00:00Z",
        cells={c.key: c for c in cells},
    )


def _judge(base: ModelBaseline, now: ModelBaseline, planned: Any = None) -> GateReport:
    return gate(base, now, CPU, "baselines/cpu-test.json", "twin:abc:fp32:L512", planned)


def key(n: int, bs: int) -> str:
    return f"{WORKLOAD}-n{n}/bs{bs}"


def _rows(lines: list[str]) -> dict[str, list[str]]:
    """The terminal verdict's table rows by their first column (a short cell name), split into columns."""
    rows = [re.split(r" {2,}", line.strip()) for line in lines if re.match(r"n\d+/bs\d+", line)]
    return {row[0]: row[1:] for row in rows}


def test_a_run_that_compared_nothing_is_incomplete_and_names_every_cell() -> None:
    """The CI case: a baseline at 256 tokens, a run at 64 tokens: nothing matches, and that is no pass."""
    base = _section(_cell(10, 1), _cell(10, 4))
    other = replace(_cell(10, 1), workload_id="fixed64-quniform8-24-latin+cjk-dall-s0-n10")
    report = _judge(base, _section(other))
    assert report.status == "incomplete"
    assert "compared nothing" in report.message
    assert report.new_cells == ("fixed64-quniform8-24-latin+cjk-dall-s0-n10/bs1",)
    assert report.vanished == (key(10, 1), key(10, 4))
    assert not report.full
    lines = format_gate(report)
    # two workloads: each named once, its cells by short name
    assert "in the baseline, not planned in this run: n10/bs1, n10/bs4 (workload " + WORKLOAD + ")" in lines
    assert "workload fixed64-quniform8-24-latin+cjk-dall-s0 (cells: n<pairs>/bs<batch size>)" in lines
    assert _rows(lines)["n10/bs1"][:2] == ["not compared", "-"]


def test_a_cell_that_now_runs_out_of_memory_is_a_regression() -> None:
    base = _section(_cell(10, 1), _cell(10, 4))
    now = _section(_cell(10, 1))
    planned = {key(10, 1): ("ok", ""), key(10, 4): ("oom", "CUDA out of memory")}
    report = _judge(base, now, planned)
    assert report.status == "fail"
    assert [c.cell for c in report.lost] == [key(10, 4)]
    assert "did not run now" in report.message
    assert report.to_dict()["regressions"] == 1
    lines = format_gate(report)
    assert _rows(lines)["n10/bs4"] == ["LOST (regression)", "-", "measured", "OOM", "-", "-", "-", "CUDA out of memory"]
    assert "1 cell unchanged (within thresholds, or not significant)" in lines


def test_the_planned_cells_of_a_report_include_those_that_did_not_run() -> None:
    cells = [
        {"workload_id": f"{WORKLOAD}-n10", "batch_size": 1, "status": "ok"},
        {"workload_id": f"{WORKLOAD}-n10", "batch_size": 64, "status": "skipped", "reason": "bs32 OOM"},
    ]
    assert planned_cells(cells) == {key(10, 1): ("ok", ""), key(10, 64): ("skipped", "bs32 OOM")}


def test_a_full_comparison_needs_every_planned_and_every_baseline_cell() -> None:
    base = _section(_cell(10, 1), _cell(10, 4))
    full = _judge(base, _section(_cell(10, 1), _cell(10, 4)))
    assert full.status == "pass"
    assert full.full
    assert full.shortfall() == ""
    partial = _judge(base, _section(_cell(10, 1)))
    assert partial.status == "pass"  # what was compared is fine ...
    assert not partial.full  # ... but a required baseline wants it all
    assert "1 baseline cell(s) not planned" in partial.shortfall()


def test_workers_merge_their_plans_before_cells_count_as_vanished() -> None:
    base = _section(_cell(10, 1), _cell(10, 4))
    first = _judge(base, _section(_cell(10, 1)))
    second = _judge(base, _section(_cell(10, 4)))
    assert first.vanished == (key(10, 4),)
    merged = first.merge(second)
    assert merged.vanished == ()
    assert merged.full


def test_another_machine_under_the_same_profile_id_is_not_compared() -> None:
    base = _section(_cell(10, 1), _cell(10, 4), flops=5e10)
    faster = _section(_cell(10, 1, scale=1.7), _cell(10, 4, scale=1.7), flops=8.5e10)
    report = _judge(base, faster)
    assert report.status == "incomplete"
    assert report.message.startswith("different machine: ")
    assert not report.comparisons
    assert not report.improvements
    # within the GEMM's own noise: the same machine, compared as usual
    assert _judge(base, _section(_cell(10, 1), _cell(10, 4), flops=5.2e10)).status == "pass"


def test_machine_difference_reads_power_limit_and_noise() -> None:
    gpu = {"gemm": "fp16 8192x8192x8192 on cuda", "flops": 7e14, "noise": 0.01, "power_limit_w": 700}
    assert machine_difference({"fingerprint": gpu}, {"fingerprint": {**gpu, "power_limit_w": 500}}) is not None
    assert machine_difference({"fingerprint": gpu}, {"fingerprint": {**gpu, "flops": 7.3e14}}) is None
    noisy = {**gpu, "noise": 0.2}  # a GEMM that noisy cannot tell a 30% difference from noise
    assert machine_difference({"fingerprint": noisy}, {"fingerprint": {**noisy, "flops": 9.1e14}}) is None
    assert machine_difference({}, {"fingerprint": gpu}) is None  # an old baseline without one: not judged


def test_the_gate_table_sorts_cells_as_numbers_and_says_what_latency_is() -> None:
    cells = [_cell(n, bs) for n in (10, 100, 50) for bs in (16, 4)]
    latency = {c.key: {**c.samples, "latency": MetricSummary.of([0.01] * 20, "s/batch", ci=False)} for c in cells}
    cells = [replace(c, samples=latency[c.key]) for c in cells]
    report = _judge(_section(*cells), _section(*cells))
    rows = [row[0] for row in gate_table(report).rows if row[1].startswith("throughput")]
    assert rows == [key(n, bs) for n in (10, 50, 100) for bs in (4, 16)]
    assert any(row[1] == "latency (forward time per batch)" for row in gate_table(report).rows)
    assert "min detectable regression" in gate_table(report).header


@pytest.mark.parametrize("status", ["fail", "incomplete"])
def test_saved_verdicts_keep_every_list(status: str) -> None:
    base = _section(_cell(10, 1), _cell(10, 4))
    now = _section(_cell(10, 1), _cell(50, 1)) if status == "incomplete" else _section()
    planned = None if status == "incomplete" else {key(10, 1): ("oom", "x")}
    report = _judge(base, now, planned)
    again = GateReport.from_dict(report.to_dict())
    assert again == report


class GemmClock:
    """A device clock on which the n-th timed GEMM takes ``seconds[n]``: each read after a start read ends one."""

    def __init__(self, seconds: list[float]) -> None:
        self.seconds = iter(seconds)
        self.now, self.started = 0.0, False

    def __call__(self) -> float:
        if self.started:
            self.now += next(self.seconds)
        self.started = not self.started
        return self.now


def test_the_fingerprint_times_a_fixed_gemm_on_the_device() -> None:
    # two warm-ups, then 15 repeats: a third at 4 ms, a third at 5 ms, a third at 6 ms
    dev.use_clock(GemmClock([1.0, 1.0] + [0.004] * 5 + [0.005] * 5 + [0.006] * 5))
    try:
        measured = measure("cpu")
    finally:
        dev.use_clock(None)
    assert measured.gemm == "fp32 512x512x512 on cpu"
    assert measured.flops == pytest.approx(2 * 512**3 / 0.005, rel=1e-3)  # the median rate; warm-ups not counted
    assert measured.noise == pytest.approx((1 / 0.004 - 1 / 0.006) / 1.349 / (1 / 0.005), rel=1e-2)  # IQR / median
    assert Fingerprint.from_dict(measured.to_dict()) == measured
    assert Fingerprint.from_dict(None) is None


def test_a_worker_without_a_baseline_makes_the_merged_verdict_incomplete() -> None:
    base = _section(_cell(10, 1))
    passed = _judge(base, _section(_cell(10, 1)))
    nothing = gate(None, _section(_cell(10, 4)), CPU, "baselines/other.json", "twin:abc:fp32:L512")
    merged = passed.merge(nothing)
    assert merged.status == "incomplete"
    assert not merged.full
    assert key(10, 4) in merged.new_cells


def test_an_oom_boundary_alone_cannot_stand_in_for_the_matrix() -> None:
    base = replace(_section(_cell(10, 1)), oom_boundaries={"512": 64})
    now = replace(_section(replace(_cell(10, 1), workload_id="fixed64-n10")), oom_boundaries={"512": 64})
    report = gate(base, now, GateSettings.for_device("cuda"), "b.json", "k")
    assert [c.metric for c in report.comparisons] == ["max_batch"]
    assert report.status == "incomplete"
    assert "compared nothing" in report.message


def test_a_cell_out_of_memory_in_both_runs_is_not_new() -> None:
    base = _section(_cell(10, 1))  # bs64 ran out of memory when recording too: the baseline stores measured cells
    report = _judge(base, _section(_cell(10, 1)), {key(10, 1): ("ok", ""), key(10, 64): ("oom", "out of memory")})
    assert report.new_cells == ()
    assert report.full


def test_the_terminal_lists_moved_cells_by_short_name_and_counts_the_unchanged_ones() -> None:
    """A CI log reads the verdict, what moved and how many did not: 34 of 36 cells unchanged are one line."""
    cells = [_cell(n, bs) for n in (10, 50, 100, 200) for bs in (1, 2, 4, 8, 16, 32, 64, 128, 256)]
    moved = {key(10, 16): 0.7, key(200, 1): 1.4}  # 30% slower, 40% faster
    now = [replace(c, samples={"throughput": _scaled(c, moved.get(c.key, 1.0))}) for c in cells]
    report = _judge(_section(*cells), _section(*now))
    assert report.status == "fail"
    lines = format_gate(report)
    assert lines[0].startswith("regression gate: FAIL: 1 regression(s)")
    rows = _rows(lines)
    assert list(rows) == ["n10/bs16", "n200/bs1"]  # regressions first, then improvements; nothing unchanged listed
    assert rows["n10/bs16"][:2] == ["REGRESSION", "throughput"]
    assert rows["n200/bs1"][:2] == ["improvement", "throughput"]
    assert f"workload {WORKLOAD} (cells: n<pairs>/bs<batch size>)" in lines  # the workload named once
    assert sum(WORKLOAD in line for line in lines) == 1
    assert "34 cells unchanged (within thresholds, or not significant)" in lines
    # what the run could see, in one line: each cell's figure is in the Markdown page
    mdrs = [c.mdr * 100 for c in report.comparisons if c.mdr is not None]
    lo, hi = f"{min(mdrs):.1f}", f"{max(mdrs):.1f}"
    shown = lo if lo == hi else f"{lo}-{hi}"
    assert f"minimum detectable regression (caught 95% of the time): throughput {shown}%" in lines
    assert not any(key(10, 1) in line or line.startswith("n10/bs1 ") for line in lines)
    # the Markdown page and the JSON keep every comparison
    assert len(gate_table(report).rows) == 36
    assert len(report.to_dict()["comparisons"]) == 36


def test_a_variants_cells_keep_their_variant_in_the_short_name() -> None:
    base = replace(_cell(10, 8), variant="token-sorted")
    slow = replace(base, samples={"throughput": _scaled(base, 0.6)})
    report = _judge(_section(_cell(10, 8), base), _section(_cell(10, 8), slow))
    rows = _rows(format_gate(report))
    assert list(rows) == ["n10/bs8+token-sorted"]
    assert rows["n10/bs8+token-sorted"][0] == "REGRESSION"


def test_without_a_baseline_the_cells_are_counted_not_listed() -> None:
    report = gate(None, _section(_cell(10, 1), _cell(10, 4)), CPU, "baselines/none.json", "twin:abc:fp32:L512")
    lines = format_gate(report)
    assert lines[0].startswith("regression gate: NO-BASELINE: ")
    assert "2 cells measured, none compared: no baseline" in lines
    assert not _rows(lines)


def _scaled(c: BaselineCell, factor: float) -> MetricSummary:
    return MetricSummary.of([v * factor for v in c.samples["throughput"].samples], "pairs/s", ci=False)
