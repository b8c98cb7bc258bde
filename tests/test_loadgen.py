"""The load generator: arrival schedules, open and closed loops, and the max-rate search."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.batching import BatcherConfig, DynamicBatcher, cross_encoder_predict
from pytest_rerank_perf.errors import RerankPerfError
from pytest_rerank_perf.loadgen import LoadPoint, closed_loop, find_max_rate, open_loop, poisson_schedule
from pytest_rerank_perf.stats import Percentiles
from pytest_rerank_perf.workload import Fixed, WorkloadSpec, build_workload


def test_poisson_schedule_offers_exactly_the_target_rate_with_exponential_gaps() -> None:
    rate, n = 250.0, 20_000
    t = poisson_schedule(rate, n, seed=4)
    assert t[-1] == pytest.approx(n / rate, rel=1e-9)
    gaps = np.diff(np.concatenate([[0.0], t]))
    assert np.all(gaps > 0)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)  # exponential: coefficient of variation 1
    assert np.mean(gaps > 2 / rate) == pytest.approx(np.exp(-2), abs=0.01)  # its tail, P(gap > 2/rate)
    np.testing.assert_array_equal(t, poisson_schedule(rate, n, seed=4))
    assert not np.array_equal(t, poisson_schedule(rate, n, seed=5))


@pytest.mark.parametrize(("rate", "requests"), [(0.0, 10), (float("nan"), 10), (10.0, 0)])
def test_poisson_schedule_rejects_bad_input(rate: float, requests: int) -> None:
    with pytest.raises(RerankPerfError, match=r"arrival rate|requests"):
        poisson_schedule(rate, requests)


def test_open_loop_arrival_rate_matches_the_target_within_5_percent(tiny_model: CrossEncoderReranker) -> None:
    """Poisson arrivals against the real batcher and the tiny twin, as the GPU benchmark runs them."""
    docs = 8
    pool = build_workload(WorkloadSpec(Fixed(64), seed=2), tiny_model.tokenizer, 64).pairs
    target = 150.0

    async def main() -> LoadPoint:
        config = BatcherConfig(max_batch=64, max_wait_s=0.002)
        async with DynamicBatcher(cross_encoder_predict(tiny_model.cross_encoder), config) as batcher:

            async def submit(i: int) -> object:
                start = (i * docs) % (len(pool) - docs)
                return await batcher.rerank(pool[start : start + docs])

            return await open_loop(submit, target, requests=300, pairs_per_request=docs, seed=1)

    point = asyncio.run(main())
    assert point.completed == 300
    assert point.errors == 0
    assert point.arrival_rate is not None
    assert point.arrival_rate == pytest.approx(target, rel=0.05)
    assert point.latency is not None
    assert point.latency.p50 <= point.latency.p95 <= point.latency.p99 <= point.latency.max


def test_open_loop_charges_queueing_to_latency() -> None:
    """A server slower than the arrival rate: latency grows with the backlog, measured from scheduled arrival."""
    lock = asyncio.Lock()

    async def slow_server(i: int) -> None:
        async with lock:  # one request at a time, 10 ms each: capacity 100/s, offered 400/s
            await asyncio.sleep(0.01)

    point = asyncio.run(open_loop(slow_server, 400.0, requests=60, seed=0))
    assert point.completed == 60
    # the last request waits for most of the 60 x 10 ms of work queued ahead of it
    assert point.latency is not None
    assert point.latency.max > 0.3
    assert not point.meets(0.1)


def test_closed_loop_keeps_exactly_the_requested_concurrency_and_counts_errors() -> None:
    in_flight, peak = 0, 0

    async def server(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        if i % 10 == 0:
            raise ValueError("bad request")

    point = asyncio.run(closed_loop(server, concurrency=6, requests=100))
    assert peak == 6
    assert point.requests == 100
    assert point.errors == 10
    assert point.completed == 90
    assert not point.meets(10.0)  # errors fail a load point whatever its latency


def _fake_point(rate: float, capacity: float) -> LoadPoint:
    p99 = 0.01 if rate <= capacity else 1.0
    return LoadPoint("open", 100, 100, 0, 1.0, Percentiles(p99, p99, p99, p99, p99, p99, 100), 1, target_rate=rate)


@pytest.mark.parametrize("capacity", [3.0, 37.0, 300.0, 5000.0])
def test_find_max_rate_brackets_the_capacity(capacity: float) -> None:
    async def measure(rate: float) -> LoadPoint:
        return _fake_point(rate, capacity)

    search = asyncio.run(find_max_rate(measure, p99_target_s=0.1, start_rate=40.0, refine_steps=4))
    assert search.max_rate is not None
    assert search.max_rate <= capacity
    failing = [p.target_rate for p in search.points if not p.meets(0.1) and p.target_rate]
    assert min(failing) / search.max_rate < 2 ** (1 / 16) + 1e-9  # four bisections of a doubling
    assert search.to_dict()["max_rate"] == search.max_rate


def test_find_max_rate_reports_none_when_nothing_passes() -> None:
    async def measure(rate: float) -> LoadPoint:
        return _fake_point(rate, capacity=0.001)

    search = asyncio.run(find_max_rate(measure, p99_target_s=0.1, start_rate=10.0, min_rate=1.0))
    assert search.max_rate is None
    assert min(p.target_rate or 0 for p in search.points) >= 1.0
