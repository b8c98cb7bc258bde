"""What the harness costs: its measured callable and trackers against a bare predict loop, interleaved."""

from __future__ import annotations

from pytest_rerank_perf.machine import device
from pytest_rerank_perf.measurements.matrix import CellRunner
from pytest_rerank_perf.measurements.overhead import PAIRS, measure_overhead
from pytest_rerank_perf.plugin.options import RerankOptions
from pytest_rerank_perf.plugin.session import RerankSession
from pytest_rerank_perf.workloads.workload import build_workload


def test_harness_overhead(
    rerank_runner: CellRunner, rerank_options: RerankOptions, rerank_session: RerankSession
) -> None:
    model = rerank_runner.model
    # the CPU fallback shows the harness's cost on the tiny twin's 10-pair calls (~25 ms), 20 pairs of them in ~1 s
    num_pairs, batch_size, pairs = (100, 32, PAIRS) if device.is_cuda(model.device) else (10, 8, PAIRS // 2)
    workload = build_workload(rerank_options.workload_spec(), model.tokenizer, num_pairs)
    result = measure_overhead(rerank_runner, workload, batch_size, pairs)
    rerank_session.add(result)
    assert result.pairs == pairs
    assert result.bare_median_s > 0
