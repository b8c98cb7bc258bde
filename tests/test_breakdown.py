"""The time breakdown: each part lands where it was spent, the parts add up, and what cannot add up says so."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.backends.phases import NO_PHASES, PhaseRecorder
from pytest_rerank_perf.backends.standin import CostModel, VirtualClock
from pytest_rerank_perf.backends.variants import build_variant
from pytest_rerank_perf.machine import device as dev
from pytest_rerank_perf.machine.hardware import detect
from pytest_rerank_perf.measurements.cell import RoundsPolicy
from pytest_rerank_perf.measurements.matrix import CellRunner, Unbenchmarked
from pytest_rerank_perf.measurements.variant_check import ReferenceScores
from pytest_rerank_perf.trackers.base import Span, track
from pytest_rerank_perf.trackers.breakdown import PARTS, BreakdownResult, BreakdownTracker
from pytest_rerank_perf.workloads.workload import LongTail, WorkloadSpec, build_workload

COST_S = {"tokenize": 0.020, "h2d": 0.005, "forward": 0.030, "rest": 0.010}


@pytest.fixture
def virtual_time() -> Iterator[VirtualClock]:
    """The device clock only moves when a phase spends its cost: the parts are exactly the costs, on any host."""
    clock = VirtualClock()
    dev.use_clock(clock)
    yield clock
    dev.use_clock(None)


def spin(seconds: float) -> None:
    dev.pause(seconds)


class Forward(torch.nn.Module):
    def forward(self, x: Any) -> Any:
        spin(COST_S["forward"])
        return x


class KnownCosts:
    """A backend whose call spends known times in each phase: the breakdown must find them where they are."""

    def __init__(self) -> None:
        self.module = Forward()
        self.phases: PhaseRecorder = NO_PHASES

    def call(self) -> None:
        with self.phases.phase("tokenize"):
            spin(COST_S["tokenize"])
        with self.phases.phase("h2d"):
            spin(COST_S["h2d"])
        self.module(1)
        spin(COST_S["rest"])

    @contextlib.contextmanager
    def timed_phases(self, recorder: PhaseRecorder) -> Iterator[bool]:
        self.phases = recorder
        yield True
        self.phases = NO_PHASES


@pytest.mark.usefixtures("virtual_time")
def test_each_part_is_found_where_it_was_spent_and_the_parts_add_up() -> None:
    model = KnownCosts()
    tracker = BreakdownTracker(model, "cpu", model.module)
    timed = tracker.wrap(model.call)
    with track([tracker]):
        for _ in range(5):
            timed()
    fields = tracker.result(Span(0, 0, 0)).against(sum(COST_S.values())).cell_fields()["breakdown"]
    total = sum(COST_S.values())
    shares = {p: fields["parts"][p]["share"] for p in PARTS}
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    for part, cost in COST_S.items():
        assert shares[part] == pytest.approx(cost / total), part
        assert fields["parts"][part]["median_s"] == pytest.approx(cost), part
    assert "why" not in fields  # nothing overlaps, and the instrumented calls are the call
    assert model.phases is NO_PHASES  # the backend reports to nobody once the breakdown stops


def test_parts_that_overlap_or_a_distorted_call_are_reported_not_hidden() -> None:
    overlapping = BreakdownResult(((0.100, 0.050, 0.010, 0.045),))  # 105 ms of parts in a 100 ms call
    assert "phases overlap" in overlapping.cell_fields()["breakdown"]["why"]
    distorted = BreakdownResult(((0.100, 0.010, 0.010, 0.050),), measured_call_s=0.080)
    assert "+25.0% off the measured ones" in distorted.cell_fields()["breakdown"]["why"]
    fine = BreakdownResult(((0.100, 0.010, 0.010, 0.050),), measured_call_s=0.098).cell_fields()["breakdown"]
    assert "why" not in fine
    assert fine["parts"]["rest"]["median_s"] == pytest.approx(0.030)


def test_a_backend_that_reports_no_phases_gets_nulls_with_the_reason() -> None:
    model = CostModel(lambda n, b: 0.0)
    tracker = BreakdownTracker(model, "cpu", None)
    with track([tracker]):
        tracker.wrap(lambda: model.predict([("q", "d")], 1))()
    fields = tracker.result(Span(0, 0, 0)).cell_fields()
    assert fields["breakdown"]["parts"] == {p: None for p in PARTS}
    assert "does not report its tokenization" in fields["why_null"]["breakdown"]


@pytest.mark.parametrize("variant", ["predict", "token-sorted"])
def test_a_cell_carries_its_breakdown_and_the_model_is_left_as_found(
    tiny_model: CrossEncoderReranker, variant: str
) -> None:
    model = build_variant(tiny_model, variant)
    workload = build_workload(WorkloadSpec(LongTail(), seed=1), tiny_model.tokenizer, 20)
    preprocess = type(tiny_model.cross_encoder).preprocess
    result = CellRunner(model, detect("cpu"), RoundsPolicy(1, 3, 0.0), reference=ReferenceScores(tiny_model)).run(
        Unbenchmarked(), workload, 4
    )
    parts = result.fields["breakdown"]["parts"]
    assert set(parts) == set(PARTS)
    assert parts["tokenize"]["median_s"] > 0
    assert parts["forward"]["median_s"] > 0
    assert sum(p["share"] for p in parts.values()) == pytest.approx(1.0, abs=1e-9)
    assert result.fields["breakdown"]["calls"] == 3
    assert result.fields["breakdown"]["measured_call_s"] == result.fields["latency_s"]["call"]["median"]
    # the phase wrappers are gone: predict is the library's own again
    assert "preprocess" not in vars(tiny_model.cross_encoder)
    assert type(tiny_model.cross_encoder).preprocess is preprocess
    from sentence_transformers.cross_encoder import model as st_model
    from sentence_transformers.util import batch_to_device

    assert st_model.batch_to_device is batch_to_device
