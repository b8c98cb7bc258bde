"""The load generator: arrival schedules, open and closed loops, and the max-rate search.

The loops run on an event loop whose clock is virtual: it jumps to the next timer instead of waiting for it, so
every arrival, wait and latency is exact and no test depends on how busy the machine is. (What the generator
achieves against a real model is a figure: the load benchmark checks each point's issued rate.)
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np
import pytest

from pytest_rerank_perf.errors import RerankPerfError
from pytest_rerank_perf.serving.loadgen import (
    LoadPoint,
    RateSearch,
    closed_loop,
    find_max_rate,
    open_loop,
    poisson_schedule,
)
from pytest_rerank_perf.stats import Percentiles

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: when nothing is ready it moves the clock to the next timer at once. For
    coroutines only (a thread's result would arrive on the wall clock while this one jumps ahead)."""

    def __init__(self) -> None:
        loop = self

        class Jumping(selectors.DefaultSelector):
            def select(self, timeout: float | None = None) -> Any:
                events = super().select(0 if timeout is not None else None)
                if not events and timeout:
                    loop.now += timeout
                return events

        self.now = 0.0
        super().__init__(Jumping())

    def time(self) -> float:
        return self.now


def virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


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


def test_open_loop_issues_each_request_at_its_scheduled_arrival() -> None:
    """The offered rate is exactly the target, and latency runs from the scheduled arrival."""
    rate, requests, service = 150.0, 300, 0.004
    issued: list[float] = []

    async def server(i: int) -> None:
        issued.append(now())
        await asyncio.sleep(service)

    point = virtual(open_loop(server, rate, requests, pairs_per_request=8, seed=1, clock=now))
    np.testing.assert_allclose(issued, poisson_schedule(rate, requests, seed=1), rtol=0, atol=1e-9)
    assert point.arrival_rate == pytest.approx(rate, rel=1e-9)
    assert (point.completed, point.errors) == (requests, 0)
    assert point.latency is not None
    assert point.latency.mean == pytest.approx(service, abs=1e-9)  # with max: every latency is the service time
    assert point.latency.max == pytest.approx(service, abs=1e-9)
    assert point.duration_s == pytest.approx(requests / rate + service, abs=1e-9)
    assert point.pairs_per_s == pytest.approx(requests * 8 / point.duration_s)


def test_open_loop_charges_queueing_to_latency() -> None:
    """A server slower than the arrival rate: each request waits for the backlog ahead of it, and its latency,
    from its scheduled arrival, says so exactly (a FIFO queue: capacity 100/s, offered 400/s)."""
    service, rate, requests = 0.01, 400.0, 60
    lock = asyncio.Lock()

    async def slow_server(i: int) -> None:
        async with lock:  # one request at a time, in arrival order
            await asyncio.sleep(service)

    point = virtual(open_loop(slow_server, rate, requests, seed=0, clock=now))
    done, expected = 0.0, []
    for arrival in poisson_schedule(rate, requests, seed=0):
        done = max(done, arrival) + service
        expected.append(done - arrival)
    assert point.completed == requests
    assert point.latency is not None
    assert point.latency.max == pytest.approx(max(expected), abs=1e-9)
    assert point.latency.p50 == pytest.approx(Percentiles.of(expected).p50, abs=1e-9)
    assert point.latency.max > 0.3  # the last request waits for most of the 60 x 10 ms queued ahead of it
    assert not point.meets(0.1)


def test_a_generator_held_up_still_charges_latency_from_the_scheduled_arrival() -> None:
    """A server that holds the event loop (10 ms per call, synchronously) makes the generator issue late: the late
    issue is charged to the requests (no coordinated omission) and shows in the issued rate."""
    rate, requests, hold = 400.0, 20, 0.01
    schedule = poisson_schedule(rate, requests, seed=3)

    async def blocking(i: int) -> None:
        asyncio.get_running_loop().now += hold  # type: ignore[attr-defined]

    point = virtual(open_loop(blocking, rate, requests, seed=3, clock=now))
    assert point.latency is not None
    # busy from the first arrival on: the last request, scheduled at schedule[-1], returns at the end of it all
    assert point.latency.max == pytest.approx(schedule[0] + requests * hold - schedule[-1], abs=1e-9)
    assert point.arrival_rate is not None
    assert point.arrival_rate < rate / 2


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

    point = virtual(closed_loop(server, concurrency=6, requests=100, clock=now))
    assert peak == 6
    assert point.requests == 100
    assert point.errors == 10
    assert point.completed == 90
    assert point.duration_s == pytest.approx(17 * 0.001, abs=1e-9)  # ceil(100 / 6) rounds of 1 ms
    assert point.latency is not None
    assert point.latency.max == pytest.approx(0.001, abs=1e-9)  # no request waited for another
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


def test_a_service_time_over_the_target_stops_the_search_before_any_rate_is_offered() -> None:
    """Queueing only adds to one request's own latency: halving the rate towards the floor (each point then lasting
    requests / rate seconds) cannot find a rate that meets the target, so none is tried."""
    offered: list[float] = []

    async def measure(rate: float) -> LoadPoint:
        offered.append(rate)
        return _fake_point(rate, capacity=1e9)

    slow = LoadPoint("closed", 20, 20, 0, 4.0, Percentiles.of([0.2] * 20), 10, concurrency=1)
    search = asyncio.run(find_max_rate(measure, p99_target_s=0.1, start_rate=10.0, service=slow))
    assert offered == []
    assert search.max_rate is None
    assert search.stopped is not None
    assert "200.0 ms, over the 100 ms target" in search.stopped
    fast = replace(slow, latency=Percentiles.of([0.05] * 20))
    assert asyncio.run(find_max_rate(measure, p99_target_s=0.1, start_rate=10.0, service=fast)).max_rate is not None


def _point(rate: float, p99: float, busy: float | None, host: float | None = None) -> LoadPoint:
    latency = Percentiles.of([p99])
    return LoadPoint("open", 10, 10, 0, 1.0, latency, 1, target_rate=rate, model_busy=busy, host_busy=host)


def test_a_max_rate_says_whether_the_model_or_the_host_held_it() -> None:
    # judged where the server saturated: the first missed rate above the max rate
    model_bound = RateSearch(0.1, [_point(10, 0.05, 0.3), _point(20, 0.08, 0.6), _point(40, 0.4, 0.97)])
    assert (model_bound.max_rate, model_bound.bound) == (20, "model")
    assert model_bound.to_dict()["model_busy"] == 0.97
    host_bound = RateSearch(0.1, [_point(20, 0.08, 0.35, 0.7), _point(40, 0.4, 0.4, 0.95)])
    assert host_bound.bound == "host"
    assert host_bound.to_dict()["host_busy"] == 0.95
    latency_bound = RateSearch(0.1, [_point(20, 0.08, 0.35, 0.1), _point(40, 0.4, 0.4, 0.2)])
    assert latency_bound.bound == "latency"  # neither saturated: the p99 target broke first
    assert RateSearch(0.1, [_point(20, 0.08, 0.5), _point(40, 0.4, None)]).bound is None  # not metered: no claim
    assert RateSearch(0.1, [_point(20, 0.08, 0.5)]).bound is None  # never saturated: nothing to say
    assert RateSearch(0.1, [_point(20, 0.5, 0.9)]).to_dict()["bound"] is None  # nothing met the target


async def _failing(i: int) -> None:
    raise RuntimeError("boom")


def test_a_rate_search_with_failed_requests_stops_and_says_why() -> None:
    search = virtual(find_max_rate(lambda r: open_loop(_failing, r, 5, clock=now), 0.1, 100.0))
    assert len(search.points) == 1
    assert search.stopped == "5 of 5 requests failed at 100.0 req/s"
    assert search.to_dict()["max_rate"] is None


def test_the_router_benchmark_reports_every_caller_count_per_intake() -> None:
    from pytest_rerank_perf.backends.standin import CostModel
    from pytest_rerank_perf.measurements import router

    pool = [[(f"q{i}", f"d{j}") for j in range(3)] for i in range(4)]
    result = router.measure_router(CostModel(lambda n, b: 0.0), pool)
    assert set(result.sweeps) == {f"{i}, max_batch {m}" for i in ("char lengths", "tokenize once") for m in (32, 128)}
    for points in result.sweeps.values():
        assert [p["callers"] for p in points] == list(router.ROUTER_CALLERS)
        assert all(p["us_per_request"] == pytest.approx(1e6 / p["requests_per_s"]) for p in points)
    again = router.RouterResult.from_report(result.report_fields())
    assert again is not None
    assert again.table().text() == result.table().text()
