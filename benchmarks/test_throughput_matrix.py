"""The batch_size x num_pairs matrix: throughput, latency, peak VRAM and MFU per cell (`nox -s gpu-bench`)."""

from __future__ import annotations

from typing import Any

from pytest_rerank_perf.measurements.cell import Cell
from pytest_rerank_perf.workloads.workload import Workload


def test_throughput(rerank_bench: Any, rerank_cell: Cell, rerank_workload: Workload) -> None:
    result = rerank_bench(rerank_workload, rerank_cell.batch_size, rerank_cell.variant)
    assert result.pairs_per_s is not None
    assert result.pairs_per_s > 0
    assert result.tokens_per_s is not None
    assert result.tokens_per_s > 0
