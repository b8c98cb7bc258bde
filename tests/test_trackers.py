"""The tracker contract and the metric seam, proven with the energy metric (one tracker + one ``Metric`` entry).

NVML is replaced by a fake counter at the ``nvml`` seam, so the GPU-only branches run here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.gate.compare import MetricComparison, compare_cell, drifts_for
from pytest_rerank_perf.gate.thresholds import GateSettings, parse_threshold_rules
from pytest_rerank_perf.measurements.matrix_result import matrix_tables
from pytest_rerank_perf.store.reader import parse_profile
from pytest_rerank_perf.store.schema import BaselineProfile, ModelBaseline, cell_from_json, dumps
from pytest_rerank_perf.trackers import TRACKERS, Span, cell_fields, track
from pytest_rerank_perf.trackers import energy as energy_mod
from pytest_rerank_perf.trackers.energy import EnergyResult, EnergyTracker
from pytest_rerank_perf.trackers.latency import CallResult, CallTracker
from pytest_rerank_perf.trackers.memory import MemoryResult
from pytest_rerank_perf.trackers.metrics import GATED, METRICS, metric

SPAN = Span(calls=10, pairs_per_call=50, batches_per_call=4)  # 500 pairs


class NotSupported(Exception):
    """Stands in for pynvml.NVMLError_NotSupported."""


class FakeNvml:
    """A total-energy counter in millijoules that advances by ``step`` per reading."""

    def __init__(self, start: int = 1_000_000, step: int = 0, supported: bool = True) -> None:
        self.value, self.step, self.supported = start, step, supported

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        if not self.supported:
            raise NotSupported("Not Supported")
        value = self.value
        self.value += self.step
        return value


def gpu_energy_tracker(monkeypatch: pytest.MonkeyPatch, fake: FakeNvml) -> EnergyTracker:
    monkeypatch.setattr(energy_mod.nvml, "device_handle", lambda device: (fake, "handle-0"))
    return EnergyTracker("cuda:0")


def test_energy_per_1k_pairs_from_the_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml()
    tracker = gpu_energy_tracker(monkeypatch, fake)  # the constructor reads once, to probe the counter
    fake.step = 12_500  # 12.5 J between the start and stop readings
    with track([tracker]):
        pass
    result = tracker.result(SPAN)
    assert result.joules == pytest.approx(12.5)
    assert result.per_1k_pairs == pytest.approx(12.5 / 500 * 1000)
    assert result.cell_fields() == {"energy_j_per_1k_pairs": pytest.approx(25.0)}


@pytest.mark.parametrize(
    ("device", "fake", "reason"),
    [
        ("cpu", FakeNvml(step=5), "not measured on the CPU"),
        ("cuda:0", FakeNvml(supported=False), "offers no energy counter"),
        ("cuda:0", FakeNvml(step=0), "did not advance"),
    ],
)
def test_energy_is_null_with_the_reason_never_zero(
    monkeypatch: pytest.MonkeyPatch, device: str, fake: FakeNvml, reason: str
) -> None:
    monkeypatch.setattr(energy_mod.nvml, "device_handle", lambda d: (fake, "handle-0"))
    tracker = EnergyTracker(device)
    tracker.start()
    tracker.stop()
    fields = tracker.result(SPAN).cell_fields()
    assert fields["energy_j_per_1k_pairs"] is None
    assert reason in fields["why_null"]["energy_j_per_1k_pairs"]


def test_tracker_results_merge_as_one_recording() -> None:
    a, b = EnergyResult(10.0, 500), EnergyResult(30.0, 500)
    assert a.merge(b).per_1k_pairs == pytest.approx(40.0)
    assert a.merge(EnergyResult(None, 500, "no counter")).per_1k_pairs is None
    calls = CallResult((1.0, 2.0), 10).merge(CallResult((3.0,), 10))
    assert calls.samples == (1.0, 2.0, 3.0)
    assert calls.pairs_per_s == pytest.approx(10 / 2.0)
    mem = MemoryResult(5, 7, None, 9).merge(MemoryResult(6, 4, None, 8))
    assert (mem.peak_allocated_bytes, mem.peak_reserved_bytes, mem.nvml_peak_process_bytes) == (6, 7, None)


def test_track_stops_every_started_tracker_when_the_block_fails() -> None:
    events: list[str] = []

    class Probe:
        def __init__(self, name: str) -> None:
            self.name = name

        def start(self) -> None:
            events.append(f"start {self.name}")

        def stop(self) -> None:
            events.append(f"stop {self.name}")

        def result(self, span: Span) -> Any:
            raise AssertionError("not read")

    with pytest.raises(RuntimeError, match="boom"), track([Probe("a"), Probe("b")]):
        raise RuntimeError("boom")
    assert events == ["start a", "start b", "stop b", "stop a"]


def test_call_tracker_reports_only_the_measured_span() -> None:
    clock = iter([0.0, 1.0, 1.0, 3.0, 3.0, 7.0]).__next__
    tracker = CallTracker(lambda: None, "cpu", clock=clock)
    tracker()  # warm-up: 1 s, outside the span
    with track([tracker]):
        tracker()
        tracker()
    result = tracker.result(Span(tracker.measured, 8, 1))
    assert result.samples == (2.0, 4.0)
    fields = cell_fields([result, EnergyResult(None, 16, "cpu")])
    assert fields["samples"]["throughput"] == [4.0, 2.0]
    assert fields["latency_s"]["call"]["median"] == pytest.approx(3.0)
    assert fields["energy_j_per_1k_pairs"] is None


def test_every_cell_gets_the_registered_trackers() -> None:
    built = [make("cpu", None) for make in TRACKERS]
    assert any(isinstance(t, EnergyTracker) for t in built)


def _cell_json(energy: float | None, scale: float = 1.0) -> dict[str, Any]:
    samples = [100.0 * scale + i for i in range(12)]
    return {
        "status": "ok",
        "workload_id": "fixed64-n10",
        "num_pairs": 10,
        "batch_size": 4,
        "rounds": 12,
        "real_tokens": 640,
        "padded_tokens": 640,
        "pairs_per_s": 100.0,
        "tokens_per_s": 6400.0,
        "latency_s": {"call": {"median": 0.1, "p99": 0.12}, "batch": None},
        "samples": {"throughput": samples},
        "peak_vram_allocated_bytes": 2**30,
        "energy_j_per_1k_pairs": energy,
    }


def _section(cell: dict[str, Any]) -> ModelBaseline:
    stored = cell_from_json(cell, "2026-11-25T00:00:00Z")
    assert stored is not None
    return ModelBaseline({}, {}, {}, "2026-11-25T00:00:00Z", {stored.key: stored})


def test_energy_reaches_the_baseline_and_round_trips(tmp_path: Path) -> None:
    section = _section(_cell_json(25.0))
    path = tmp_path / "nvidia-h100.json"
    path.write_text(dumps(BaselineProfile("nvidia-h100", {"k": section})))
    data = json.loads(path.read_text())
    assert data["models"]["k"]["cells"]["fixed64-n10/bs4"]["energy"] == 25.0
    cell = parse_profile(data, path).models["k"].cells["fixed64-n10/bs4"]
    assert cell.values["energy"] == 25.0


def test_a_baseline_written_before_the_energy_metric_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "nvidia-h100.json"
    data = json.loads(dumps(BaselineProfile("nvidia-h100", {"k": _section(_cell_json(25.0))})))
    del data["models"]["k"]["cells"]["fixed64-n10/bs4"]["energy"]
    cell = parse_profile(data, path).models["k"].cells["fixed64-n10/bs4"]
    assert cell.values["energy"] is None
    assert cell.values["vram"] == 2**30


def _compared(base: ModelBaseline, now: ModelBaseline, settings: GateSettings) -> list[MetricComparison]:
    """The one cell of these sections, compared as the gate compares it (with the run's pooled drift)."""
    key = "fixed64-n10/bs4"
    return compare_cell(base.cells[key], now.cells[key], settings, drifts_for(base, now, settings))


def test_the_gate_judges_energy_on_a_gpu_only() -> None:
    base = _section(_cell_json(25.0))
    now = _section(_cell_json(30.0))  # +20%: beyond the 10% default
    gpu = {c.metric: c for c in _compared(base, now, GateSettings.for_device("cuda"))}
    assert gpu["energy"].verdict == "regression"
    assert gpu["energy"].threshold == pytest.approx(metric("energy").threshold("cuda"))
    assert gpu["vram"].verdict == "unchanged"
    cpu = {c.metric for c in _compared(base, now, GateSettings.for_device("cpu"))}
    assert "energy" not in cpu
    looser = GateSettings.for_device("cuda", parse_threshold_rules(["energy=25%"]))
    assert {c.metric: c for c in _compared(base, now, looser)}["energy"].verdict == "unchanged"


def test_a_missing_energy_figure_is_no_comparison_not_a_pass_or_fail() -> None:
    base, now = _section(_cell_json(None)), _section(_cell_json(30.0))
    assert "energy" not in {c.metric for c in _compared(base, now, GateSettings.for_device("cuda"))}


def test_the_matrix_table_shows_every_column_metric() -> None:
    (table,) = matrix_tables([_cell_json(25.0)])
    assert {m.label for m in METRICS if m.column is True and m.scope == "cell"} <= set(table.header)
    assert "request p99 ms" not in table.header  # measured on a data file's requests only
    row = dict(zip(table.header, table.rows[0], strict=True))
    assert row["J/1k pairs"] == "25.0"
    (cpu_table,) = matrix_tables([_cell_json(None)])
    assert dict(zip(cpu_table.header, cpu_table.rows[0], strict=True))["J/1k pairs"] == "-"


def test_registry_is_consistent() -> None:
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    for m in GATED:
        assert m.thresholds, f"{m.name} is gated but has no threshold"
    stored = [m.stored_as for m in METRICS if m.gated and m.scope == "cell"]
    assert len(stored) == len(set(stored))


def test_a_plotted_metric_gets_its_plot_where_measured(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pytest_rerank_perf.report.plots import write_plots

    data = {"model": {}, "profile": {}, "cells": [_cell_json(25.0), {**_cell_json(20.0), "batch_size": 8}]}
    assert "energy.png" in [p.filename for p in write_plots(data, tmp_path)]
    assert (tmp_path / "energy.png").stat().st_size > 0
    cpu = {"model": {}, "profile": {}, "cells": [_cell_json(None)]}
    (tmp_path / "cpu").mkdir()
    assert "energy.png" not in [p.filename for p in write_plots(cpu, tmp_path / "cpu")]


def test_a_cell_that_did_not_run_keeps_every_figure_as_null_with_the_reason(
    tiny_model: Any, tiny_tokenizer: Any
) -> None:
    from pytest_rerank_perf.backends.standin import OomAbove
    from pytest_rerank_perf.machine.hardware import detect
    from pytest_rerank_perf.measurements.cell import RoundsPolicy
    from pytest_rerank_perf.measurements.matrix import CellRunner
    from pytest_rerank_perf.workloads.workload import Fixed, WorkloadSpec, build_workload

    runner = CellRunner(OomAbove(tiny_model, 2), detect("cpu"), RoundsPolicy(1, 2, 0.0, fixed_rounds=2))
    work = build_workload(WorkloadSpec(Fixed(32)), tiny_tokenizer, 8)
    for batch_size in (4, 8):  # out of memory, then skipped
        cell = runner.run(None, work, batch_size).to_dict()
        assert cell["status"] in ("oom", "skipped")
        for key in ("pairs_per_s", "tokens_per_s", "peak_vram_allocated_bytes", "energy_j_per_1k_pairs", "mfu"):
            assert key in cell, key
            assert cell[key] is None, key
        assert cell["latency_s"] == {"call": None, "batch": None, "request": None}
        assert cell["why_null"]["*"] == cell["reason"]


def test_no_matplotlib_note_when_nothing_could_be_plotted(tmp_path: Path) -> None:
    from pytest_rerank_perf.measurements.invariance import InvarianceResult
    from pytest_rerank_perf.report.markdown import report_markdown
    from pytest_rerank_perf.report.run_report import RunReport

    report = RunReport("now", "cpu", {}, "p", {}, results={"invariance": InvarianceResult("fp32", [1e-6])})
    assert "matplotlib is not installed" not in report_markdown(report, [])
    assert "## Score invariance" in report_markdown(report, [])
