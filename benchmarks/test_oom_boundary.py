"""The largest batch that fits on this GPU, per max_length: a memory regression shows as a smaller boundary."""

from __future__ import annotations

import pytest

from pytest_rerank_perf.backends import Reranker
from pytest_rerank_perf.machine import device
from pytest_rerank_perf.measurements.oom_boundary import OomBoundaries, measure_boundary
from pytest_rerank_perf.plugin.session import RerankSession


@pytest.mark.parametrize("max_length", [128, 256, 512, 1024])
def test_oom_boundary(rerank_model: Reranker, rerank_session: RerankSession, max_length: int) -> None:
    if not device.is_cuda(rerank_model.device):
        pytest.skip("the out-of-memory boundary is a GPU figure (tests/test_oom.py covers the search on the CPU)")
    boundary = measure_boundary(rerank_model, max_length)
    rerank_session.add(OomBoundaries({max_length: boundary}))
    assert boundary.max_batch >= 1, f"not even one {max_length}-token pair fits"
