"""The GPU-path defects of the audit, each driven through the fake GPU (or the fake NVML) and pinned by a test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_rerank_perf.backends import CrossEncoderReranker, load_model
from pytest_rerank_perf.backends.twin import TINY_TWIN, build_twin
from pytest_rerank_perf.errors import UsageError
from pytest_rerank_perf.fakegpu import FakeGpu, GiB
from pytest_rerank_perf.fakegpu.nvml import CONTEXT_BYTES
from pytest_rerank_perf.machine import device as dev
from pytest_rerank_perf.machine.flops import peak_flops
from pytest_rerank_perf.machine.hardware import detect
from pytest_rerank_perf.measurements.cell import RoundsPolicy
from pytest_rerank_perf.measurements.matrix import CellRunner, Unbenchmarked
from pytest_rerank_perf.measurements.oom_boundary import measure_boundary
from pytest_rerank_perf.measurements.overhead import measure_overhead
from pytest_rerank_perf.plugin.runtime import pin_worker_device
from pytest_rerank_perf.report.plots import plot_vram
from pytest_rerank_perf.trackers import BatchTracker
from pytest_rerank_perf.trackers.memory import MemoryTracker
from pytest_rerank_perf.workloads.workload import Fixed, Workload, WorkloadSpec, build_workload

TOKEN = 2**20  # fake activation bytes per token


def _fake(*gpus: str, **options: Any) -> FakeGpu:
    return FakeGpu(
        gpus or ("h100",), budget_bytes=options.pop("budget_bytes", 2 * GiB), bytes_per_token=TOKEN, **options
    )


@pytest.fixture
def on_gpu(twin_cache: Path, tiny_twin_dir: Path) -> Iterator[tuple[FakeGpu, CrossEncoderReranker]]:
    with _fake("h100", "h100").installed() as gpu:
        yield gpu, gpu.attach(load_model("twin-tiny", "cuda:0", "fp16", 512, cache_dir=twin_cache))


def _runner(model: CrossEncoderReranker) -> CellRunner:
    return CellRunner(model, detect(model.device), RoundsPolicy(1, 3, 0.0))


def _workload(model: CrossEncoderReranker, n: int, tokens: int = 64) -> Workload:
    return build_workload(WorkloadSpec(Fixed(tokens)), model.tokenizer, n)


def test_1_a_cells_vram_is_its_own_not_what_earlier_work_left_cached(on_gpu: Any) -> None:
    _gpu, model = on_gpu
    measure_boundary(model, 256, limit=8)  # leaves up to 2 GiB of blocks cached
    cell = _runner(model).run(Unbenchmarked(), _workload(model, 8), 4).to_dict()
    activations = 4 * 64 * TOKEN
    assert cell["peak_vram_added_bytes"] == activations
    weights = cell["peak_vram_allocated_bytes"] - activations
    assert cell["peak_vram_reserved_bytes"] < weights + activations + 4 * 2**20  # block rounding only
    assert cell["nvml_peak_process_bytes"] == CONTEXT_BYTES + cell["peak_vram_reserved_bytes"]  # not the cache


def test_2_the_bare_side_of_the_overhead_runs_without_hooks_or_samplers(on_gpu: Any) -> None:
    _, model = on_gpu
    runner = _runner(model)
    batch = next(t for t in runner.trackers if isinstance(t, BatchTracker))
    memory = next(t for t in runner.trackers if isinstance(t, MemoryTracker))
    seen: list[tuple[bool, bool]] = []
    predict = model.predict

    def spying(pairs: Any, batch_size: int) -> Any:
        seen.append((bool(batch._handles), memory.nvml.running))
        return predict(pairs, batch_size)

    model.predict = spying  # type: ignore[method-assign]
    measure_overhead(runner, _workload(model, 4), 4, pairs=6)
    timed = seen[3:]  # after three bare warm-up calls
    assert timed.count((False, False)) == 6  # bare: nothing of the harness alive
    assert timed.count((True, True)) == 6  # harness: every tracker started


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4e12),
        ("NVIDIA H100 PCIe", 756.5e12),
        ("NVIDIA H200 NVL", 835.5e12),  # not the SXM H200
        ("NVIDIA L40", 181.0e12),  # not the L4
        ("NVIDIA L40S", 362.0e12),
        ("NVIDIA L4", 121.0e12),
        ("NVIDIA A100-SXM4-40GB", 312.0e12),
        ("NVIDIA A100 80GB PCIe", 312.0e12),
        ("NVIDIA H800", 989.4e12),
        ("NVIDIA H20", 148.0e12),
        ("NVIDIA B200", 2250.0e12),
        ("NVIDIA A10", 125.0e12),
        ("NVIDIA A40", 149.7e12),
        ("Tesla T4", 65.0e12),
        ("NVIDIA GeForce RTX 4090", 165.2e12),
        ("NVIDIA RTX A1000", None),  # not an A100
        ("NVIDIA A10G", None),  # not an A10: unknown, so no MFU rather than a wrong one
    ],
)
def test_3_peaks_match_exact_names_only(name: str, expected: float | None) -> None:
    peak, why = peak_flops(name, "fp16")
    assert peak == (pytest.approx(expected) if expected else None)
    assert (why is None) == (expected is not None)
    if expected is None:
        assert name in (why or "")


def test_3_a_mig_slice_gets_its_share_of_the_sms() -> None:
    assert peak_flops("NVIDIA H100 80GB HBM3 MIG 3g.40gb", "fp16", 60)[0] == pytest.approx(989.4e12 * 60 / 132)
    peak, why = peak_flops("NVIDIA H100 80GB HBM3 MIG 3g.40gb", "fp16", None)
    assert peak is None
    assert "3g.40gb" in (why or "")


def test_3_an_unknown_gpu_has_no_mfu_and_says_why(twin_cache: Path, tiny_twin_dir: Path) -> None:
    with _fake("rtx-a1000").installed() as gpu:
        model = gpu.attach(load_model("twin-tiny", "cuda:0", "fp16", 512, cache_dir=twin_cache))
        cell = _runner(model).run(Unbenchmarked(), _workload(model, 4), 4).to_dict()
    assert cell["mfu"] is None
    assert "NVIDIA RTX A1000" in cell["why_null"]["mfu"]


@pytest.mark.parametrize(("slice_name", "profile"), [("h100-mig-3g", "3g-40gb"), ("h100-mig-1g", "1g-10gb")])
def test_4_a_mig_slice_is_its_own_machine(slice_name: str, profile: str) -> None:
    with _fake(slice_name).installed():
        hardware = detect("cuda:0")
    assert hardware.profile_id == f"nvidia-h100-80gb-hbm3-mig-{profile}"
    assert hardware.gpu is not None
    assert hardware.gpu.uuid
    assert hardware.gpu.uuid.startswith("MIG-")
    assert hardware.gpu.driver_version  # the parent refusing its memory query does not drop the NVML facts
    assert hardware.gpu.memory_total_bytes < 80 * GiB
    assert hardware.notes == ()


def _cell_on(gpu: FakeGpu, twin_cache: Path) -> dict[str, Any]:
    with gpu.installed():
        model = gpu.attach(load_model("twin-tiny", "cuda:0", "fp16", 512, cache_dir=twin_cache))
        return _runner(model).run(Unbenchmarked(), _workload(model, 4), 4).to_dict()


def test_5_host_pids_leave_the_process_figure_null_with_the_reason(twin_cache: Path, tiny_twin_dir: Path) -> None:
    cell = _cell_on(_fake(host_pids=True), twin_cache)
    assert cell["nvml_peak_process_bytes"] is None
    assert "host pids" in cell["why_null"]["nvml_peak_process_bytes"]
    assert cell["nvml_peak_device_used_bytes"] > 0


def test_6_a_library_mismatch_costs_one_figure_not_the_cell(twin_cache: Path, tiny_twin_dir: Path) -> None:
    cell = _cell_on(_fake(process_query="mismatch"), twin_cache)
    assert cell["status"] == "ok"
    assert cell["nvml_peak_process_bytes"] is None
    assert "NVMLLibraryMismatchError" in cell["why_null"]["nvml_peak_process_bytes"]
    assert cell["nvml_peak_device_used_bytes"] > 0  # the sampler kept sampling


def test_7_events_are_recorded_and_read_on_the_trackers_device(on_gpu: Any, twin_cache: Path) -> None:
    gpu, _ = on_gpu
    model = gpu.attach(load_model("twin-tiny", "cuda:1", "fp16", 512, cache_dir=twin_cache))
    dev.set_device("cuda:0")  # the current device is another GPU
    tracker = BatchTracker(model.batch_module(), "cuda:1")
    tracker.start()
    model.predict([("q", "d")] * 4, 2)
    tracker.stop()
    assert {start.device for start, _ in tracker._stamps} == {1}
    assert len(tracker.result(_span(2)).seconds) == 2


def _span(batches: int) -> Any:
    from pytest_rerank_perf.trackers import Span

    return Span(1, 4, batches)


def test_8_the_vram_plot_keeps_the_data_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from pytest_rerank_perf.report import plots

    figures: list[Any] = []
    monkeypatch.setattr(plots, "save", lambda fig, out_dir, name: figures.append(fig) or name)
    cells = [
        {
            "status": "ok",
            "batch_size": bs,
            "num_pairs": 64,
            "workload_id": "w-n64",
            "peak_vram_allocated_bytes": bs * GiB,
        }
        for bs in (1, 8)
    ]
    plot_vram({"cells": cells, "profile": {"gpu": {"memory_total_bytes": 80 * GiB}}}, tmp_path)
    (ax,) = figures[0].axes
    assert ax.get_ylim()[1] < 20  # GiB: 1-8 GiB of data fill the axis, not its bottom tenth
    assert "80 GiB" in ax.get_title()


def test_9_building_a_twin_leaves_every_cuda_generator_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reseeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    monkeypatch.setattr(torch.cuda, "manual_seed", reseeded.append)
    before = torch.random.get_rng_state()
    build_twin(TINY_TWIN, tmp_path / "twin")
    assert reseeded == []
    assert torch.equal(torch.random.get_rng_state(), before)


def test_10_an_explicit_gpu_under_several_workers_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cuda:1 with 2 pytest-xdist workers"):
        pin_worker_device("cuda:1", "cuda:1", 0, 2, workers=2)
    assert pin_worker_device("cuda:1", "cuda:1", 0, 2, workers=1) == "cuda:1"


def test_11_a_cublas_allocation_failure_is_an_out_of_memory(twin_cache: Path, tiny_twin_dir: Path) -> None:
    with _fake(cublas_oom=True, budget_bytes=GiB // 4).installed() as gpu:
        model = gpu.attach(load_model("twin-tiny", "cuda:0", "fp16", 512, cache_dir=twin_cache))
        runner = _runner(model)
        cell = runner.run(Unbenchmarked(), _workload(model, 8, 64), 8)
        boundary = measure_boundary(model, 64, limit=16)
    assert cell.status == "oom"
    assert "CUBLAS_STATUS_ALLOC_FAILED" in cell.reason
    assert boundary.max_batch == 3  # 3 x 64 tokens x 1 MiB fit in 256 MiB beside the weights; 4 do not
