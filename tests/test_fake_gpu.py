"""The fake GPU behaves as CUDA and NVML do where the harness relies on it (so the GPU-path tests mean something)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pytest_rerank_perf.backends import load_model
from pytest_rerank_perf.fakegpu import FakeGpu, GiB
from pytest_rerank_perf.fakegpu.cuda import BLOCK
from pytest_rerank_perf.machine import device as dev
from pytest_rerank_perf.machine import nvml


@pytest.fixture
def gpu() -> Iterator[FakeGpu]:
    with FakeGpu(["h100", "h100"], budget_bytes=GiB).installed() as fake:
        yield fake


def test_events_cannot_be_read_before_their_device_is_synchronised(gpu: FakeGpu) -> None:
    start, end = dev.stamp("cuda:1"), dev.stamp("cuda:1")
    with pytest.raises(RuntimeError, match="not ready"):
        start.elapsed_time(end)
    dev.synchronize("cuda:0")  # the other device: still not ready
    with pytest.raises(RuntimeError, match="not ready"):
        start.elapsed_time(end)
    assert dev.elapsed("cuda:1", [(start, end)])[0] >= 0


def test_the_current_device_is_per_thread(gpu: FakeGpu) -> None:
    dev.set_device("cuda:1")
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(dev.current_index()))
    thread.start()
    thread.join()
    assert (dev.current_index(), seen) == (1, [0])
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        dev.set_device("cuda:2")


def test_the_allocator_caches_resets_peaks_to_now_and_runs_out_of_memory(gpu: FakeGpu) -> None:
    alloc = gpu.cuda.devices[0].allocator
    alloc.malloc(3 * BLOCK)
    alloc.free(2 * BLOCK)
    assert (alloc.allocated, alloc.reserved) == (BLOCK, 3 * BLOCK)  # freed blocks stay cached
    dev.reset_peaks("cuda:0")
    assert dev.peaks("cuda:0") == (BLOCK, 3 * BLOCK)  # reset to what is held now, not to zero
    dev.free_memory("cuda:0")
    assert gpu.cuda.memory_reserved(0) == BLOCK
    with pytest.raises(torch.cuda.OutOfMemoryError):
        alloc.malloc(GiB)
    assert dev.is_oom(dev.out_of_memory())


def test_forwards_of_an_attached_model_allocate_on_its_device(
    gpu: FakeGpu, twin_cache: Path, tiny_twin_dir: Path
) -> None:
    model = gpu.attach(load_model("twin-tiny", device="cuda:1", dtype="fp16", max_length=64, cache_dir=twin_cache))
    weights = gpu.cuda.memory_allocated(1)
    assert weights > 0
    assert gpu.cuda.memory_allocated(0) == 0
    model.predict([("q", "d")] * 4, 4)
    assert gpu.cuda.devices[1].forwards == 1
    assert gpu.cuda.memory_allocated(1) == weights  # activations freed after the forward
    assert gpu.cuda.max_memory_allocated(1) > weights


def test_fake_nvml_keeps_the_real_quirks() -> None:
    fake = FakeGpu(["h100-mig-3g"], strings="bytes", process_query="mismatch")
    pynvml = fake.nvml
    pynvml.nvmlInit()
    parent = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(pynvml.nvmlDeviceGetName(parent), bytes)
    assert pynvml.nvmlDeviceGetUUID(parent).startswith(b"GPU-")
    with pytest.raises(pynvml.NVMLError_NoPermission):
        pynvml.nvmlDeviceGetMemoryInfo(parent)
    slice_handle = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)
    assert pynvml.nvmlDeviceGetUUID(slice_handle).startswith(b"MIG-")
    with pytest.raises(pynvml.NVMLLibraryMismatchError):
        pynvml.nvmlDeviceGetComputeRunningProcesses(slice_handle)
    assert not issubclass(pynvml.NVMLLibraryMismatchError, pynvml.NVMLError)  # outside it, as nvidia-ml-py 13's


def test_installing_and_uninstalling_restores_torch_and_pynvml() -> None:
    fake = FakeGpu(["l4"])
    with fake.installed():
        assert dev.cuda_available()
        assert dev.properties(0).name == "NVIDIA L4"
        assert nvml.load() is fake.nvml
    assert dev.cuda_available() == torch.cuda.is_available()
    assert nvml.load() is not fake.nvml


def test_a_device_beyond_the_visible_ones_and_bf16_on_a_t4_are_clear_errors() -> None:
    from pytest_rerank_perf.backends.precision import resolve_dtype
    from pytest_rerank_perf.errors import DeviceError

    with FakeGpu(["t4", "h100"]).installed():
        with pytest.raises(DeviceError, match="only 2 CUDA device"):
            dev.resolve("cuda:2")
        dev.set_device("cuda:1")  # the current device is the H100: the T4 is still asked about itself
        with pytest.raises(DeviceError, match="does not support bfloat16"):
            resolve_dtype("bf16", "cuda:0")
        assert resolve_dtype("bf16", "cuda:1") == "bf16"


def test_a_clock_sample_without_its_throttle_reasons_is_unknown_not_unthrottled() -> None:
    from pytest_rerank_perf.trackers import ClockTracker, Span

    fake = FakeGpu(["h100"], throttle_mask=0x40)

    def refused(handle: object) -> int:
        raise fake.nvml.NVMLError_NotSupported()

    fake.nvml.nvmlDeviceGetCurrentClocksThrottleReasons = refused
    with fake.installed():
        tracker = ClockTracker("cuda:0")
        tracker.start()
        tracker.stop()
        fields = tracker.result(Span(1, 1, 1)).cell_fields()
    assert fields["throttled"] is None
    assert "Not Supported" in fields["why_null"]["throttled"]


def test_a_torch_uuid_nvml_does_not_know_gives_no_handle_rather_than_another_gpus() -> None:
    fake = FakeGpu(["h100", "h100"])
    fake.nvml.nvmlInit()
    with pytest.raises(LookupError, match="no NVML device has torch's UUID"):
        nvml.handle_for(fake.nvml, 1, "GPU-00000000-0000-0000-0000-000000000000")
    assert nvml.handle_for(fake.nvml, 1, fake.cuda.get_device_properties(1).uuid).index == 1
