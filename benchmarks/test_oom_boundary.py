"""The largest batch that fits on this GPU, per max_length: a memory regression shows as a smaller boundary."""

from __future__ import annotations

import pytest

from pytest_rerank_perf.model import LoadedModel
from pytest_rerank_perf.oom import find_max_batch
from pytest_rerank_perf.plugin import RerankSession
from pytest_rerank_perf.workload import Fixed, WorkloadSpec, build_workload

LIMIT = 4096  # batch sizes beyond this are not searched: a boundary of LIMIT means "at least"


@pytest.mark.parametrize("max_length", [128, 256, 512, 1024])
def test_oom_boundary(rerank_model: LoadedModel, rerank_session: RerankSession, max_length: int) -> None:
    if not rerank_model.device.startswith("cuda"):
        pytest.skip("the out-of-memory boundary is a GPU figure (tests/test_oom.py covers the search on the CPU)")
    ce = rerank_model.cross_encoder
    pair = build_workload(WorkloadSpec(Fixed(max_length)), rerank_model.tokenizer, 1).pairs[0]
    old = ce.max_seq_length
    ce.max_seq_length = max_length
    try:
        boundary = find_max_batch(
            lambda bs: ce.predict([pair] * bs, batch_size=bs, show_progress_bar=False), rerank_model.device, LIMIT
        )
    finally:
        ce.max_seq_length = old
    rerank_session.oom_boundaries[max_length] = boundary
    assert boundary.max_batch >= 1, f"not even one {max_length}-token pair fits"
