"""The dynamic batcher's router alone: a zero-cost model, so requests/s and microseconds per request are what the
batcher itself costs (queueing, grouping, futures, thread hops), at 1-64 concurrent callers.

Two intakes: character lengths taken inline (the router's floor), and tokenize-once in the tokenizer thread
(``batcher_config.token_ids``: what the load benchmark serves with). Their gap is the host's tokenization cost per
request, which bounds the batcher's rate on a GPU fast enough to make the model's share small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..backends import Pair, Reranker
from ..errors import RerankPerfError
from ..machine import device as dev
from ..serving.batcher_config import PrepareFn, token_ids
from ..serving.batching import BatcherConfig, DynamicBatcher
from ..serving.loadgen import closed_loop
from ..tables import Table

ROUTER_MAX_BATCH = (32, 128)
ROUTER_CALLERS = (1, 4, 16, 64)
ROUTER_REQUESTS = 1000  # per point
CPU_ROUTER_REQUESTS = 100  # the CPU fallback: its tokenize-once intake runs 150-400 req/s, 1000 took 20 s


def _zero_cost(payloads: list[Any]) -> list[float]:
    return [0.0] * len(payloads)


async def _point(
    pool: Sequence[list[Pair]], config: BatcherConfig, prepare: PrepareFn | None, callers: int, requests: int
) -> dict:
    async with DynamicBatcher(_zero_cost, config, prepare=prepare) as batcher:
        point = await closed_loop(lambda i: batcher.rerank(pool[i % len(pool)]), callers, requests)
    if point.errors or point.completed < point.requests:  # a rate of failed requests is no rate
        raise RerankPerfError(f"router benchmark: {point.errors} of {point.requests} requests failed ({config.id})")
    rps = point.throughput_rps
    return {"callers": callers, "requests_per_s": rps, "us_per_request": 1e6 / rps}


async def _sweep(model: Reranker, pool: Sequence[list[Pair]], requests: int) -> dict[str, Any]:
    intakes: dict[str, PrepareFn | None] = {"char lengths": None, "tokenize once": token_ids(model)}
    out: dict[str, Any] = {}
    for intake, prepare in intakes.items():
        for max_batch in ROUTER_MAX_BATCH:
            config = BatcherConfig(max_batch=max_batch, max_wait_s=0.0)  # no timer: the router's own speed
            out[f"{intake}, max_batch {max_batch}"] = [
                await _point(pool, config, prepare, c, requests) for c in ROUTER_CALLERS
            ]
    return out


def measure_router(model: Reranker, pool: Sequence[list[Pair]]) -> RouterResult:
    """Every (intake, max_batch) at every caller count, over a pool of requests (the load benchmark's)."""
    requests = ROUTER_REQUESTS if dev.is_cuda(model.device) else CPU_ROUTER_REQUESTS
    return RouterResult(asyncio.run(_sweep(model, pool, requests)), len(pool[0]) if pool else 0)


@dataclass
class RouterResult:
    key: ClassVar[str] = "router"
    sweeps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "intake, max_batch N" -> points
    pairs_per_request: int = 0

    def report_fields(self) -> dict[str, Any]:
        return {"router": {"sweeps": self.sweeps, "pairs_per_request": self.pairs_per_request}}

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"router": None}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> RouterResult | None:
        raw = data.get("router")
        return cls(dict(raw["sweeps"]), int(raw["pairs_per_request"])) if raw else None

    def merge(self, other: RouterResult) -> RouterResult:
        return self  # one sweep per run suffices; under xdist the first worker's stands

    def table(self) -> Table:
        rows = [
            (name, *(f"{p['requests_per_s']:,.0f} req/s, {p['us_per_request']:,.0f} µs" for p in points))
            for name, points in self.sweeps.items()
        ]
        title = f"batcher router, zero-cost model, {self.pairs_per_request} pairs per request (closed loop)"
        return Table(("intake", *(f"{c} callers" for c in ROUTER_CALLERS)), rows, title)

    def summary_lines(self) -> list[str]:
        return self.table().text()

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        return ["", "## The batcher's router alone", "", *self.table().markdown()]
