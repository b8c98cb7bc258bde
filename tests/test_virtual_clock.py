"""The device clock seam and the virtual clock the end-to-end tests run on (``pytest_rerank_perf/fakegpu/clock.py``):
every timing site of a cell reads it, the slowdown injector waits on it, and a forward's cost is seeded."""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.backends import CrossEncoderReranker, load_model
from pytest_rerank_perf.backends.standin import VirtualClock
from pytest_rerank_perf.fakegpu.clock import ForwardCost, VirtualForwards, process_index
from pytest_rerank_perf.machine import device as dev
from pytest_rerank_perf.machine.hardware import detect
from pytest_rerank_perf.measurements.cell import RoundsPolicy
from pytest_rerank_perf.measurements.matrix import CellRunner, Unbenchmarked
from pytest_rerank_perf.workloads.workload import Fixed, WorkloadSpec, build_workload


@pytest.fixture
def clock() -> Iterator[VirtualClock]:
    installed = VirtualClock()
    dev.use_clock(installed)
    yield installed
    dev.use_clock(None)


def test_pause_moves_a_virtual_clock_at_once_and_spends_wall_time_without_one(clock: VirtualClock) -> None:
    start = time.perf_counter()
    dev.pause(30.0)
    assert dev.clock() == clock() == 30.0
    assert time.perf_counter() - start < 30.0  # no wall time spent waiting
    dev.use_clock(None)
    start = dev.clock()
    dev.pause(0.002)
    assert dev.clock() - start >= 0.002  # the wall clock: a busy-wait, never shorter


def test_a_forward_costs_its_padded_tokens_and_the_noise_is_seeded() -> None:
    exact = VirtualForwards(ForwardCost(base_s=0.01, per_token_s=1e-5, noise=0.0), VirtualClock())
    assert exact.seconds(4, 100) == pytest.approx(0.01 + 1e-5 * 400)
    noisy = ForwardCost(noise=0.05, drift=0.05, seed=3)
    draws = [VirtualForwards(noisy, VirtualClock()).seconds(4, 100) for _ in range(2)]
    assert draws[0] == draws[1]  # the same seed, the same forward: reproducible
    rerun = VirtualForwards(noisy, VirtualClock(), recording=True)
    assert rerun.factor == VirtualForwards(noisy, VirtualClock()).factor  # one process, one drift
    assert rerun.seconds(4, 100) != draws[0]  # a recording does not replay the compared run's noise
    factors = {VirtualForwards(noisy, VirtualClock(), process=i).factor for i in range(4)}
    assert len(factors) == 4  # each pooled process drifts its own way


def test_a_pooled_process_is_known_by_its_report_folder() -> None:
    def config(report_dir: str) -> Any:
        return types.SimpleNamespace(getoption=lambda name, default=None: report_dir)

    assert process_index(config("/tmp/run/reports/processes/process-2")) == 2
    assert process_index(config("reports")) == 0


@pytest.fixture
def fresh_model(twin_cache: Path, tiny_twin_dir: Path) -> CrossEncoderReranker:
    """Its own copy of the tiny twin: the hooks below stay on the model they are registered on."""
    return load_model("twin-tiny", device="cpu", dtype="fp32", max_length=512, cache_dir=twin_cache)


def test_the_injected_slowdown_stretches_the_virtual_forward_every_tracker_reads(
    clock: VirtualClock, fresh_model: CrossEncoderReranker
) -> None:
    cost = ForwardCost(base_s=0.010, per_token_s=1e-5, noise=0.0)
    VirtualForwards(cost, clock).attach(fresh_model)  # at load, as the plugin does: before every other hook
    workload = build_workload(WorkloadSpec(Fixed(32)), fresh_model.tokenizer, 8)
    forward = cost.base_s + cost.per_token_s * 4 * 32  # a batch of 4 pairs of 32 tokens
    policy = RoundsPolicy(warmup_rounds=1, min_rounds=3, min_time_s=0.0)

    plain = CellRunner(fresh_model, detect("cpu"), policy).run(Unbenchmarked(), workload, 4).to_dict()
    assert plain["latency_s"]["batch"]["median"] == pytest.approx(forward)
    assert plain["latency_s"]["call"]["median"] == pytest.approx(2 * forward)  # two batches: nothing else costs
    assert plain["breakdown"]["parts"]["forward"]["share"] == pytest.approx(1.0)

    slowed = CellRunner(fresh_model, detect("cpu"), policy, inject_slowdown=0.5).run(Unbenchmarked(), workload, 4)
    assert slowed.fields["latency_s"]["batch"]["median"] == pytest.approx(1.5 * forward)  # inside the timed forward
    assert slowed.fields["latency_s"]["call"]["median"] == pytest.approx(3 * forward)
