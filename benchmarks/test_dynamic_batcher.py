"""The dynamic batcher under load, against per-request fixed-batch ``predict`` (the concurrent scenarios).

The procedure lives in ``pytest_rerank_perf.measurements.load``; this test runs it per concurrent scenario and
checks that what it measured can be trusted.
"""

from __future__ import annotations

from pytest_rerank_perf.backends import Reranker
from pytest_rerank_perf.measurements.load import measure_load
from pytest_rerank_perf.plugin.options import RerankOptions
from pytest_rerank_perf.plugin.session import RerankSession
from pytest_rerank_perf.scenarios import Scenario


def test_dynamic_batcher_under_load(
    rerank_model: Reranker, rerank_options: RerankOptions, rerank_session: RerankSession, rerank_load_scenario: Scenario
) -> None:
    result = measure_load(rerank_model, rerank_options.workload_spec(), rerank_load_scenario)
    rerank_session.add(result)

    points = result.points()
    assert points, "the rate search measured nothing"
    assert all(p["errors"] == 0 for p in points), "requests failed under load"
    # The generator must offer what it claims, or the rates in the table mean nothing.
    for p in points:
        assert abs(p["arrival_rate"] / p["target_rate"] - 1) < 0.05, f"generator fell behind: {p}"
