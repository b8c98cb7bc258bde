"""What the harness costs: its measured callable against a bare ``CrossEncoder.predict`` loop, interleaved."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pytest_rerank_perf.measure import CellRunner
from pytest_rerank_perf.plugin import RerankSession
from pytest_rerank_perf.timing import synchronizer
from pytest_rerank_perf.workload import build_workload

PAIRS = 40  # interleaved (bare, harness) call pairs


def test_harness_overhead(rerank_runner: CellRunner, rerank_options: Any, rerank_session: RerankSession) -> None:
    model = rerank_runner.model
    gpu = model.device.startswith("cuda")
    num_pairs, batch_size = (100, 32) if gpu else (50, 16)
    workload = build_workload(rerank_options.workload_spec(), model.tokenizer, num_pairs)
    sync = synchronizer(model.device)
    predict = rerank_runner.predict_fn(workload, batch_size)

    def bare() -> None:
        predict()
        sync()

    # Exactly what is alive while a cell's rounds run: call tracker, per-batch hooks, memory sampler.
    harness, batches, memory = rerank_runner.instruments(workload, batch_size)
    for _ in range(3):
        bare()
    memory.start()
    batches.start()
    ratios, bare_times = [], []
    try:
        for i in range(PAIRS):
            order = (bare, harness) if i % 2 == 0 else (harness, bare)  # alternate to cancel drift
            times = {}
            for fn in order:
                start = time.perf_counter()
                fn()
                times[fn] = time.perf_counter() - start
            ratios.append(times[harness] / times[bare])
            bare_times.append(times[bare])
    finally:
        batches.stop()
        memory.stop()
    overhead = float(np.median(ratios)) - 1
    q1, q3 = np.percentile(ratios, [25, 75]) - 1
    rerank_session.overhead = {
        "overhead": overhead,
        "iqr": [float(q1), float(q3)],
        "pairs": PAIRS,
        "num_pairs": num_pairs,
        "batch_size": batch_size,
        "bare_median_s": float(np.median(bare_times)),
    }
    assert len(harness.samples) == PAIRS
    assert batches.result() is not None
