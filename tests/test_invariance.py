"""Score invariance on the CPU tiny twin (hypothesis), and proof that the checks catch batch-dependent models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.backends.standin import SkewedLogits, Wrapped
from pytest_rerank_perf.measurements.invariance import check_invariance, tolerance
from pytest_rerank_perf.workloads.strategies import pair_sets
from pytest_rerank_perf.workloads.workload import Fixed, Pair, WorkloadSpec, build_workload

# Derandomized: the same examples on every run (a property test must not pass or fail by luck), no database. A
# property that must fail on a skewed model stops at its first failing example: no shrinking, which would spend
# minutes of forwards on a minimal case nothing here reads.
FEW = settings(max_examples=12, deadline=None, derandomize=True, database=None)
FIRST_FAILURE = settings(FEW, max_examples=8, phases=(Phase.explicit, Phase.generate))


def test_twin_scores_actually_differ(tiny_model: CrossEncoderReranker, tiny_tokenizer: Any) -> None:
    """Without a wide init range every score is ~0.5 and invariance would hold trivially."""
    pairs = list(build_workload(WorkloadSpec(Fixed(48), seed=3), tiny_tokenizer, 24).pairs)
    raw = tiny_model.logits(pairs, 8)
    assert np.ptp(raw) > 0.5
    assert np.ptp(1 / (1 + np.exp(-raw))) > 0.1


def test_tolerance_is_a_few_ulps_of_the_logit() -> None:
    values = np.array([0.3, 8.0])
    assert tolerance("fp32", values) == pytest.approx([1e-5 + 2 * 2.0**-23, 1e-5 + 2 * 2.0**-20])
    assert tolerance("fp16", values)[1] == pytest.approx(1e-2 + 2 * 2.0**-7)
    assert tolerance("bf16", values)[0] == pytest.approx(6e-2 + 2 * 2.0**-7)  # bf16: 3 mantissa bits fewer


@FEW
@given(data=st.data())
def test_scores_invariant_to_batch_size_order_and_padding(
    tiny_model: CrossEncoderReranker, tiny_tokenizer: Any, data: st.DataObject
) -> None:
    pairs = data.draw(pair_sets(tiny_tokenizer, max_pairs=10, max_tokens=160), label="pairs")
    long_one = build_workload(WorkloadSpec(Fixed(400), seed=1), tiny_tokenizer, 1).pairs[0]
    report = check_invariance(tiny_model, pairs, long_neighbour=long_one)
    assert report.dtype == "fp32"  # the precision now comes from the model's identity
    report.assert_ok()
    assert report.max_deviation < 1e-5


@pytest.mark.parametrize(
    ("how", "check"), [("batch_size", "batch_size=8"), ("position", "permutation"), ("padding", "padding")]
)
def test_property_fails_on_a_batch_dependent_model(
    tiny_model: CrossEncoderReranker, tiny_tokenizer: Any, how: str, check: str
) -> None:
    skewed = SkewedLogits(tiny_model, how)
    long_one = build_workload(WorkloadSpec(Fixed(400), seed=1), tiny_tokenizer, 1).pairs[0]

    @FIRST_FAILURE
    @given(pairs=pair_sets(tiny_tokenizer, max_pairs=6, max_tokens=96))
    def prop(pairs: list) -> None:
        check_invariance(skewed, pairs, batch_sizes=[1, 2, 4, 8], long_neighbour=long_one).assert_ok()

    with pytest.raises(AssertionError, match="scores are not invariant"):
        prop()
    # and the check made for that kind of dependence is among those that catch it
    pairs = list(build_workload(WorkloadSpec(Fixed(40), docs_per_query=3), tiny_tokenizer, 9).pairs)
    report = check_invariance(skewed, pairs, batch_sizes=[1, 2, 4, 8], long_neighbour=long_one)
    assert any(f.startswith(check) for f in report.failures()), report.failures()


def test_ranking_violation_is_reported(tiny_model: CrossEncoderReranker, tiny_tokenizer: Any) -> None:
    class Reversed(Wrapped):
        def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
            out = super().logits(pairs, batch_size)
            return -out if batch_size > 1 else out

    pairs = list(build_workload(WorkloadSpec(Fixed(40), docs_per_query=4), tiny_tokenizer, 4).pairs)
    report = check_invariance(Reversed(tiny_model), pairs, batch_sizes=[4])
    assert not report.ok
    assert any("swapped rank" in f for f in report.failures())


def test_invariance_fixture_runs_on_user_data(pytester: pytest.Pytester, shared_cache_env: Any) -> None:
    pytester.makepyfile(
        """
        def test_mine(rerank_invariance):
            pairs = [("what is a reranker", "a model that scores pairs"), ("what is a reranker", "bananas"),
                     ("capital of France", "Paris is the capital of France")]
            report = rerank_invariance(pairs, batch_sizes=[1, 2, 3])
            report.assert_ok()
            assert report.dtype == "fp32" and len(report.deviations) == 4
        """
    )
    pytester.runpytest("--rerank-device", "cpu").assert_outcomes(passed=1)
