"""The dynamic batcher under load, against per-request fixed-batch ``predict`` (the high-concurrency scenario).

For each server (per-request predict, and the batcher at a few ``max_batch`` values) an open-loop Poisson load
searches for the highest arrival rate whose p99 request latency meets the scenario's SLO; a closed-loop sweep of
concurrent callers then shows the best batcher's throughput and latency as load grows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pytest_rerank_perf.batching import BatcherConfig, DynamicBatcher, cross_encoder_predict, token_counter
from pytest_rerank_perf.loadgen import LoadPoint, RateSearch, closed_loop, find_max_rate, open_loop
from pytest_rerank_perf.model import LoadedModel
from pytest_rerank_perf.options import RerankOptions
from pytest_rerank_perf.plugin import RerankSession
from pytest_rerank_perf.scenarios import Scenario
from pytest_rerank_perf.workload import Pair, build_workload

BATCHER_MAX_BATCH = (32, 128)
MAX_WAIT_S = 0.002
CONCURRENCY = (1, 4, 16, 64)
POOL_REQUESTS = 32  # distinct requests in the pool; request i reuses pool slot i % 32


def _point_seconds(device: str) -> float:
    return 2.0 if device.startswith("cuda") else 1.0


async def _search(submit: Callable[[int], Awaitable[Any]], name: str, docs: int, p99: float, seconds: float
                  ) -> RateSearch:  # fmt: skip
    # One caller at a time gives the service time; start the search at half that rate.
    probe = await closed_loop(submit, 1, 20, docs, server=name)
    start = max(0.5, 0.5 * probe.throughput_rps)

    async def at(rate: float) -> LoadPoint:
        requests = int(min(5000, max(50, rate * seconds)))
        return await open_loop(submit, rate, requests, docs, seed=int(rate * 1000), server=name)

    return await find_max_rate(at, p99, start, refine_steps=3)


async def _run(model: LoadedModel, pool: list[list[Pair]], scenario: Scenario, seconds: float) -> dict[str, Any]:
    docs, p99 = scenario.request_pairs, scenario.p99_s or 1.0
    ce = model.cross_encoder
    reference = f"predict-bs{docs}"
    servers: dict[str, Any] = {}

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fixed-predict") as single:

        def fixed(pairs: list[Pair]) -> Any:
            return ce.predict(pairs, batch_size=docs, show_progress_bar=False)

        async def submit_fixed(i: int) -> Any:
            return await loop.run_in_executor(single, fixed, pool[i % len(pool)])

        search = await _search(submit_fixed, reference, docs, p99, seconds)
        servers[reference] = {**search.to_dict(), "max_batch": docs}

    lengths = token_counter(model.tokenizer, model.identity.max_length)
    best: tuple[float, BatcherConfig] | None = None
    for max_batch in BATCHER_MAX_BATCH:
        config = BatcherConfig(max_batch=max_batch, max_wait_s=MAX_WAIT_S)
        async with DynamicBatcher(cross_encoder_predict(ce), config, lengths) as batcher:
            search = await _search(lambda i, b=batcher: b.rerank(pool[i % len(pool)]), f"batcher-{config.id}", docs,
                                   p99, seconds)  # fmt: skip
            servers[f"batcher-{config.id}"] = {**search.to_dict(), "max_batch": max_batch,
                                               "mean_batch": batcher.stats.mean_batch}  # fmt: skip
        if search.max_rate and (best is None or search.max_rate > best[0]):
            best = (search.max_rate, config)

    sweep: list[dict[str, Any]] = []
    if best is not None:
        config = best[1]
        async with DynamicBatcher(cross_encoder_predict(ce), config, lengths) as batcher:
            for c in CONCURRENCY:
                point = await closed_loop(lambda i, b=batcher: b.rerank(pool[i % len(pool)]), c, max(64, 8 * c), docs,
                                          server=f"batcher-{config.id}")  # fmt: skip
                sweep.append(point.to_dict())
    return {"scenario": scenario.name, "pairs_per_request": docs, "p99_target_s": p99, "reference": reference,
            "servers": servers, "closed_loop": sweep}  # fmt: skip


def test_dynamic_batcher_under_load(
    rerank_model: LoadedModel, rerank_options: RerankOptions, rerank_session: RerankSession,
    rerank_load_scenario: Scenario,
) -> None:  # fmt: skip
    docs = rerank_load_scenario.request_pairs
    workload = build_workload(rerank_options.workload_spec(), rerank_model.tokenizer, docs * POOL_REQUESTS)
    pool = [list(workload.pairs[i * docs : (i + 1) * docs]) for i in range(POOL_REQUESTS)]
    result = asyncio.run(_run(rerank_model, pool, rerank_load_scenario, _point_seconds(rerank_model.device)))
    rerank_session.load[rerank_load_scenario.name] = result

    points = [p for s in result["servers"].values() for p in s["points"]]
    assert points, "the rate search measured nothing"
    assert all(p["errors"] == 0 for p in points), "requests failed under load"
    # The generator must offer what it claims, or the rates in the table mean nothing.
    for p in points:
        assert abs(p["arrival_rate"] / p["target_rate"] - 1) < 0.05, f"generator fell behind: {p}"
