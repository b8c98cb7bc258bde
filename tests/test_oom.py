"""OOM boundary search and safe_predict, with a stand-in that runs out of CUDA memory above a token budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.backends.standin import CostModel, Wrapped
from pytest_rerank_perf.measurements.oom_boundary import find_max_batch
from pytest_rerank_perf.serving.safe_predict import safe_predict
from pytest_rerank_perf.workloads.workload import Fixed, Pair, Uniform, WorkloadSpec, build_workload, crossencoder_order


class TokenBudget(Wrapped):
    """Runs the tiny twin, but raises CUDA out-of-memory when a batch's padded tokens exceed ``budget``.

    Like ``CrossEncoder.predict`` it batches in its own order (longest first) and pads to the batch's longest pair.
    """

    def __init__(self, model: CrossEncoderReranker, lengths: dict[tuple[str, str], int], budget: int) -> None:
        super().__init__(model)
        self.lengths, self.budget = lengths, budget
        self.computed: list[tuple[tuple[str, str], ...]] = []  # batches that produced scores
        self.failed: list[int] = []  # sizes of batches that ran out of memory

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        order = crossencoder_order(pairs)
        for start in range(0, len(order), batch_size):
            batch = [pairs[i] for i in order[start : start + batch_size]]
            if len(batch) * max(self.lengths[p] for p in batch) > self.budget:
                self.failed.append(len(batch))
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        self.computed.append(tuple(pairs))
        return super().predict(pairs, batch_size)


def _workload(tokenizer: Any, n: int, dist: Any = None) -> tuple[list[tuple[str, str]], dict[tuple[str, str], int]]:
    work = build_workload(WorkloadSpec(dist or Fixed(64), seed=5), tokenizer, n)
    return list(work.pairs), dict(zip(work.pairs, work.token_lengths, strict=True))


@pytest.mark.parametrize(("budget", "expected"), [(64 * 37, 37), (64 * 64, 64), (64 * 1, 1), (63, 0), (64 * 200, 100)])
def test_boundary_is_exact(tiny_tokenizer: Any, budget: int, expected: int) -> None:
    pairs, lengths = _workload(tiny_tokenizer, 100)
    # the search reads only whether a batch fitted: what fits is scored by a model-free stand-in, not the twin
    stand_in = TokenBudget(CostModel(lambda n, b: 0.0), lengths, budget)  # type: ignore[arg-type]
    result = find_max_batch(lambda bs: stand_in.predict(pairs[:bs], batch_size=bs), "cpu", limit=100)
    assert result.max_batch == expected
    assert result.first_oom == (None if expected == 100 else expected + 1)
    tried = [bs for bs, _ in result.attempts]
    assert len(tried) == len(set(tried))  # no size tried twice
    assert len(tried) <= 2 * 7 + 1  # doubling then bisection: logarithmic


def test_boundary_search_lets_other_errors_through(tiny_model: CrossEncoderReranker) -> None:
    def broken(bs: int) -> None:
        raise RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED")  # not an OOM: a real failure

    with pytest.raises(RuntimeError, match="CUBLAS"):
        find_max_batch(broken, "cpu")


def test_safe_predict_halves_retries_only_the_failed_batch_and_keeps_order(
    tiny_model: CrossEncoderReranker, tiny_tokenizer: Any
) -> None:
    pairs, lengths = _workload(tiny_tokenizer, 45, Uniform(24, 120))
    reference = tiny_model.cross_encoder.predict(pairs, batch_size=64, show_progress_bar=False)
    stand_in = TokenBudget(tiny_model, lengths, budget=6 * 120)
    result = safe_predict(stand_in, pairs, batch_size=32)
    np.testing.assert_allclose(result.scores, reference, atol=1e-6)
    assert result.scores.dtype == np.float32
    assert result.halvings == (32, 16, 8)  # halved, never straight to 1
    assert result.batch_size == 4
    flat = [p for batch in stand_in.computed for p in batch]
    assert sorted(flat) == sorted(pairs)
    assert len(flat) == len(set(flat))


def test_safe_predict_without_oom_is_predict(tiny_model: CrossEncoderReranker, tiny_tokenizer: Any) -> None:
    pairs, lengths = _workload(tiny_tokenizer, 20)
    stand_in = TokenBudget(tiny_model, lengths, budget=10**9)
    result = safe_predict(stand_in, pairs, batch_size=8)
    assert result.halvings == ()
    assert result.batch_size == 8
    np.testing.assert_allclose(
        result.scores, tiny_model.cross_encoder.predict(pairs, batch_size=8, show_progress_bar=False), atol=1e-6
    )


def test_safe_predict_gives_up_when_one_pair_does_not_fit(
    tiny_model: CrossEncoderReranker, tiny_tokenizer: Any
) -> None:
    pairs, lengths = _workload(tiny_tokenizer, 5)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        safe_predict(TokenBudget(tiny_model, lengths, budget=10), pairs, batch_size=4)


def test_safe_predict_does_not_retry_other_errors(tiny_model: CrossEncoderReranker) -> None:
    class Broken:
        calls = 0

        def predict(self, pairs: list, batch_size: int, **kwargs: Any) -> None:
            Broken.calls += 1
            raise RuntimeError("device-side assert triggered")

    with pytest.raises(RuntimeError, match="device-side assert"):
        safe_predict(Broken(), [("q", "d")] * 4, batch_size=4)
    assert Broken.calls == 1


@pytest.mark.parametrize(
    ("pairs", "error", "message"),
    [
        (None, TypeError, "pairs is None"),
        ("query", TypeError, "got str"),
        ([("q", "d"), ("only one",)], TypeError, r"pairs\[1\] is \('only one',\)"),
        ([("q", None)], TypeError, r"pairs\[0\]"),
        ([("q", "d")], ValueError, "batch_size must be an integer of at least 1, got 0"),
    ],
)
def test_safe_predict_rejects_bad_input(
    tiny_model: CrossEncoderReranker, pairs: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        safe_predict(tiny_model.cross_encoder, pairs, batch_size=0 if error is ValueError else 4)


def test_safe_predict_empty_list_is_an_empty_float32_array(tiny_model: CrossEncoderReranker) -> None:
    result = safe_predict(tiny_model.cross_encoder, [], batch_size=4)
    assert result.scores.shape == (0,)
    assert result.scores.dtype == np.float32


@pytest.mark.parametrize("text", ["CUDA out of memory. Tried to allocate 2.00 GiB", "CUBLAS_STATUS_ALLOC_FAILED"])
def test_boundary_search_counts_a_library_allocation_failure_as_oom(text: str) -> None:
    """A RuntimeError that names a failed CUDA allocation (older torch, cuBLAS, cuDNN) is an out-of-memory."""

    def run(bs: int) -> None:
        if bs > 5:
            raise RuntimeError(text)

    assert find_max_batch(run, "cpu", limit=64).max_batch == 5
