"""The self-check (`nox -s gpu-selfcheck`): the harness's assumptions on this machine, before its figures count.

Each test runs one check of ``pytest_rerank_perf.measurements.selfcheck`` and fails on a ``fail`` verdict; the
table of every check, its measured value and verdict is printed at the end. On the CPU the GPU checks say so and
are skipped; the run-to-run spread applies everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rerank_perf.backends import Reranker
from pytest_rerank_perf.gate.thresholds import GateSettings
from pytest_rerank_perf.machine.hardware import HardwareProfile
from pytest_rerank_perf.measurements import selfcheck
from pytest_rerank_perf.measurements.matrix import CellRunner
from pytest_rerank_perf.plugin.options import RerankOptions
from pytest_rerank_perf.plugin.session import RerankSession
from pytest_rerank_perf.plugin.spread import measure_spread, spread_check
from pytest_rerank_perf.workloads.workload import Fixed, WorkloadSpec, build_workload

MATRIX_TEST = Path(__file__).resolve().parent.parent / "test_throughput_matrix.py"


def _record(session: RerankSession, check: selfcheck.Check) -> None:
    session.add(selfcheck.SelfCheckResult([check]))
    if check.verdict == "n/a":
        pytest.skip(f"{check.name}: {check.note}")
    assert check.verdict != "fail", f"{check.name}: {check.measured}; {check.note}"


@pytest.fixture(scope="module")
def long_batch(rerank_model: Reranker) -> list[tuple[str, str]]:
    """32 pairs at the model's max_length: a forward long enough to time against the wall clock."""
    length = rerank_model.identity.max_length
    return list(build_workload(WorkloadSpec(Fixed(length)), rerank_model.tokenizer, 32).pairs)


def test_cuda_events_agree_with_wall_time(
    rerank_model: Reranker, rerank_session: RerankSession, long_batch: list[tuple[str, str]]
) -> None:
    _record(rerank_session, selfcheck.events_agree_with_wall_time(rerank_model, long_batch))


def test_peak_memory_resets_to_the_resident_weights(
    rerank_model: Reranker, rerank_session: RerankSession, long_batch: list[tuple[str, str]]
) -> None:
    _record(rerank_session, selfcheck.memory_returns_to_resident(rerank_model, long_batch[:16]))


def test_nvml_sees_this_process(rerank_model: Reranker, rerank_session: RerankSession) -> None:
    _record(rerank_session, selfcheck.nvml_sees_this_process(rerank_model.device))


def test_no_other_process_uses_the_gpu(rerank_model: Reranker, rerank_session: RerankSession) -> None:
    _record(rerank_session, selfcheck.no_other_process(rerank_model.device))


def test_clocks_during_a_measured_cell(
    rerank_runner: CellRunner, rerank_options: RerankOptions, rerank_session: RerankSession
) -> None:
    workload = build_workload(rerank_options.workload_spec(), rerank_runner.model.tokenizer, 64)
    _record(rerank_session, selfcheck.clocks_during_a_cell(rerank_runner, workload, 16))


def test_run_to_run_spread(
    pytestconfig: pytest.Config,
    rerank_hardware: HardwareProfile,
    rerank_options: RerankOptions,
    rerank_session: RerankSession,
    tmp_path: Path,
) -> None:
    spread = measure_spread(pytestconfig, MATRIX_TEST, tmp_path)
    settings = GateSettings.for_device(rerank_hardware.kind, rerank_options.thresholds)
    threshold = settings.threshold("*", "throughput")
    _record(rerank_session, spread_check(spread, threshold))
