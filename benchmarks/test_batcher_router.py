"""The dynamic batcher's router alone, with a zero-cost model: what the batcher itself costs per request."""

from __future__ import annotations

from pytest_rerank_perf.backends import Reranker
from pytest_rerank_perf.measurements.load import request_pool
from pytest_rerank_perf.measurements.router import ROUTER_CALLERS, measure_router
from pytest_rerank_perf.plugin.options import RerankOptions
from pytest_rerank_perf.plugin.session import RerankSession


def test_batcher_router(rerank_model: Reranker, rerank_options: RerankOptions, rerank_session: RerankSession) -> None:
    pool = request_pool(rerank_model, rerank_options.workload_spec(), 10)
    result = measure_router(rerank_model, pool)
    rerank_session.add(result)
    for name, points in result.sweeps.items():
        assert [p["callers"] for p in points] == list(ROUTER_CALLERS), name
        assert all(p["requests_per_s"] > 0 for p in points), name
