"""Score invariance on the model under test, in its precision (fp16 on a GPU): batch size, order, padding."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pytest_rerank_perf.backends import Reranker
from pytest_rerank_perf.measurements.invariance import InvarianceReport, InvarianceResult
from pytest_rerank_perf.plugin.session import RerankSession
from pytest_rerank_perf.workloads.strategies import pair_sets
from pytest_rerank_perf.workloads.workload import Fixed, WorkloadSpec, build_workload


@given(data=st.data())
def test_scores_are_invariant(
    rerank_model: Reranker, rerank_invariance: Any, rerank_session: RerankSession, data: st.DataObject
) -> None:
    tokenizer = rerank_model.tokenizer
    pairs = data.draw(pair_sets(tokenizer, max_pairs=24, max_tokens=384), label="pairs")
    long_one = build_workload(WorkloadSpec(Fixed(rerank_model.identity.max_length), seed=1), tokenizer, 1).pairs[0]
    report: InvarianceReport = rerank_invariance(pairs, long_neighbour=long_one)
    rerank_session.add(InvarianceResult(report.dtype, [report.max_deviation]))
    report.assert_ok()
