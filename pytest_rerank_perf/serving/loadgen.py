"""Load generation for a reranking server: open-loop Poisson arrivals and closed-loop concurrency sweeps.

Open loop is MLPerf's Server scenario: requests arrive at seeded exponential intervals whatever the server does,
and a request's latency runs from its *scheduled* arrival, so a server that falls behind is charged for the queue
it builds (no coordinated omission). Closed loop keeps ``concurrency`` requests in flight: each caller sends its
next request when the last one returns. ``find_max_rate`` searches for the highest arrival rate whose p99 latency
meets a target with no errors.

Both loops read time from ``clock`` (``time.perf_counter`` unless given) and wait with ``asyncio.sleep``, on the
running loop's clock: on an event loop whose clock is virtual, with ``clock=loop.time``, a schedule and the
latencies it produces are exact (``tests/test_loadgen.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import RerankPerfError
from ..stats import Percentiles

Submit = Callable[[int], Awaitable[Any]]  # submit(request_index) -> awaitable that completes with the response
Clock = Callable[[], float]  # seconds, monotonic
# A server whose model worker is busy this much of the time at its max rate has no more to give from the host
# side: its rate is the model's. Below it the model waited on something else (the event loop, tokenization).
MODEL_BOUND = 0.8


@dataclass(frozen=True)
class LoadPoint:
    """One load level: what was offered, what was measured."""

    mode: Literal["open", "closed"]
    requests: int
    completed: int
    errors: int
    duration_s: float
    latency: Percentiles | None  # None when no request completed
    pairs_per_request: int
    target_rate: float | None = None  # open loop: offered requests/s
    arrival_rate: float | None = None  # open loop: requests/s actually issued (the generator's own fidelity)
    concurrency: int | None = None  # closed loop: requests in flight
    server: str = ""
    model_busy: float | None = None  # share of the point's wall time the model worker was busy, where metered
    host_busy: float | None = None  # share the tokenizer thread was busy (a batcher that tokenizes apart), or None

    @property
    def throughput_rps(self) -> float:
        return self.completed / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def pairs_per_s(self) -> float:
        return self.throughput_rps * self.pairs_per_request

    def meets(self, p99_target_s: float) -> bool:
        complete = self.errors == 0 and self.completed == self.requests
        return complete and self.latency is not None and self.latency.p99 <= p99_target_s

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "latency": self.latency.to_dict() if self.latency else None,
            "throughput_rps": self.throughput_rps,
            "pairs_per_s": self.pairs_per_s,
        }


def poisson_schedule(rate: float, requests: int, seed: int = 0) -> np.ndarray:
    """Arrival offsets in seconds: exponential gaps rescaled so the last arrival lands at ``requests / rate``.

    Rescaled exponential gaps are the order statistics of uniform arrivals on that window, i.e. a Poisson process
    conditioned on its count: still memoryless arrivals, but the offered rate is exactly the target rather than
    off by the sampling error of the mean gap (5% at 400 requests).
    """
    if not (rate > 0 and math.isfinite(rate)):
        raise RerankPerfError(f"arrival rate {rate!r}: must be a positive number of requests per second")
    if requests < 1:
        raise RerankPerfError(f"requests {requests!r}: need at least one request")
    gaps = np.random.default_rng(seed).exponential(1.0, requests)
    return np.cumsum(gaps * (requests / rate / gaps.sum()))


async def _timed(
    submit: Submit, index: int, since: float, latencies: list[float], errors: list[BaseException], clock: Clock
) -> None:
    try:
        await submit(index)
    except Exception as exc:  # a failed request counts as an error, never as a latency
        errors.append(exc)
        return
    latencies.append(clock() - since)


async def open_loop(
    submit: Submit,
    rate: float,
    requests: int,
    pairs_per_request: int = 1,
    seed: int = 0,
    server: str = "",
    clock: Clock = time.perf_counter,
) -> LoadPoint:
    """Issue ``requests`` requests at Poisson arrivals of ``rate`` per second and wait for all of them."""
    schedule = poisson_schedule(rate, requests, seed)
    latencies: list[float] = []
    errors: list[BaseException] = []
    tasks = []
    start = clock()
    last_issue = start
    for i, offset in enumerate(schedule):
        due = start + float(offset)
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        last_issue = clock()
        tasks.append(asyncio.ensure_future(_timed(submit, i, due, latencies, errors, clock)))
    await asyncio.gather(*tasks)
    end = clock()
    return LoadPoint(
        mode="open",
        requests=requests,
        completed=len(latencies),
        errors=len(errors),
        duration_s=end - start,
        latency=Percentiles.of(latencies) if latencies else None,
        pairs_per_request=pairs_per_request,
        target_rate=rate,
        arrival_rate=requests / (last_issue - start) if last_issue > start else math.inf,
        server=server,
    )


async def closed_loop(
    submit: Submit,
    concurrency: int,
    requests: int,
    pairs_per_request: int = 1,
    server: str = "",
    clock: Clock = time.perf_counter,
) -> LoadPoint:
    """``concurrency`` callers, each sending its next request when its last returns, ``requests`` in all."""
    if concurrency < 1:
        raise RerankPerfError(f"concurrency {concurrency!r}: need at least one caller")
    latencies: list[float] = []
    errors: list[BaseException] = []
    counter = iter(range(requests))

    async def caller() -> None:
        for i in counter:
            await _timed(submit, i, clock(), latencies, errors, clock)

    start = clock()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return LoadPoint(
        mode="closed",
        requests=requests,
        completed=len(latencies),
        errors=len(errors),
        duration_s=clock() - start,
        latency=Percentiles.of(latencies) if latencies else None,
        pairs_per_request=pairs_per_request,
        concurrency=concurrency,
        server=server,
    )


@dataclass
class RateSearch:
    """The outcome of ``find_max_rate``: every point tried, and the best rate that met the target."""

    p99_target_s: float
    points: list[LoadPoint] = field(default_factory=list)
    stopped: str | None = None  # why the search ended early (requests failed), or None

    @property
    def best(self) -> LoadPoint | None:
        passing = [p for p in self.points if p.meets(self.p99_target_s)]
        return max(passing, key=lambda p: p.target_rate or 0.0, default=None)

    @property
    def max_rate(self) -> float | None:
        best = self.best
        return best.target_rate if best else None

    @property
    def saturated(self) -> LoadPoint | None:
        """The lowest rate above the max rate that missed the target: where the server ran out of capacity."""
        best = self.best
        above = [p for p in self.points if best and (p.target_rate or 0) > (best.target_rate or 0)]
        return min(above, key=lambda p: p.target_rate or 0.0, default=None)

    @property
    def bound(self) -> str | None:
        """What held the max rate, judged where the server saturated (the first missed rate above it): ``model``
        when the model worker was busy at least ``MODEL_BOUND`` of the time there; ``host`` when the tokenizer
        thread was; ``latency`` when neither was (the p99 target broke first: batching delay, queueing, the
        event loop); None where not metered or never saturated."""
        point = self.saturated
        if self.best is None or point is None or point.model_busy is None:
            return None
        if point.model_busy >= MODEL_BOUND:
            return "model"
        return "host" if (point.host_busy or 0.0) >= MODEL_BOUND else "latency"

    def to_dict(self) -> dict[str, Any]:
        return {
            "p99_target_s": self.p99_target_s,
            "max_rate": self.max_rate,
            "bound": self.bound,
            "model_busy": self.saturated.model_busy if self.saturated and self.best else None,
            "host_busy": self.saturated.host_busy if self.saturated and self.best else None,
            "stopped": self.stopped,
            "points": [p.to_dict() for p in sorted(self.points, key=lambda p: p.target_rate or 0.0)],
        }


async def find_max_rate(
    measure: Callable[[float], Awaitable[LoadPoint]],
    p99_target_s: float,
    start_rate: float,
    max_rate: float = 1e6,
    min_rate: float | None = None,
    refine_steps: int = 3,
    service: LoadPoint | None = None,
) -> RateSearch:
    """Double the rate until p99 misses the target, then bisect (geometrically) between the last pass and fail.

    ``service``: one request at a time (a closed loop of one caller). Where its p99 already misses the target, no
    offered rate can meet it (queueing only adds to it): the search stops there instead of halving the rate down
    to the floor, each point then lasting ``requests / rate`` seconds, minutes on a slow machine."""
    search = RateSearch(p99_target_s)
    if service is not None and service.latency is not None and service.latency.p99 > p99_target_s:
        search.stopped = (
            f"one request at a time already takes p99 {service.latency.p99 * 1e3:,.1f} ms, over the "
            f"{p99_target_s * 1e3:,.0f} ms target: no rate meets it"
        )
        return search
    floor = min_rate or start_rate / 64

    async def passes(rate: float) -> bool:
        point = await measure(rate)
        search.points.append(point)
        if point.errors:  # failures are not a matter of rate: stop here, and say so
            search.stopped = f"{point.errors} of {point.requests} requests failed at {rate:,.1f} req/s"
            raise _Failed
        return point.meets(p99_target_s)

    with contextlib.suppress(_Failed):
        await _bracket_and_bisect(passes, start_rate, max_rate, floor, refine_steps)
    return search


class _Failed(Exception):
    """A load point had failed requests: the search ends there."""


async def _bracket_and_bisect(
    passes: Callable[[float], Awaitable[bool]], start_rate: float, max_rate: float, floor: float, refine_steps: int
) -> None:
    lo: float | None = None
    hi: float | None = None
    rate = start_rate
    if await passes(rate):
        lo = rate
        while rate * 2 <= max_rate:
            rate *= 2
            if not await passes(rate):
                hi = rate
                break
            lo = rate
    else:
        hi = rate
        while rate / 2 >= floor:
            rate /= 2
            if await passes(rate):
                lo = rate
                break
            hi = rate
    if lo is None or hi is None:
        return  # nothing passes above the floor, or everything passes up to max_rate
    for _ in range(refine_steps):
        mid = math.sqrt(lo * hi)
        if await passes(mid):
            lo = mid
        else:
            hi = mid
