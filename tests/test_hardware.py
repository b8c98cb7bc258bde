from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import torch

from pytest_rerank_perf.machine import hardware
from pytest_rerank_perf.machine.hardware import detect, slugify

H100 = types.SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=85_520_809_984, major=9, minor=0, uuid=None)


def test_cpu_profile() -> None:
    profile = detect("cpu")
    assert profile.kind == "cpu"
    assert profile.gpu is None
    assert profile.profile_id.startswith("cpu-")
    assert profile.profile_id.endswith(f"-{profile.cpu_cores}c-{torch.get_num_threads()}t")
    assert profile.software["torch"] == torch.__version__
    assert "no GPU" in profile.summary()


def test_cpu_profile_id_is_a_clean_slug() -> None:
    assert hardware._cpu_profile_id("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", 2, 1) == (
        "cpu-intel-xeon-platinum-8481c-2c-1t"
    )
    assert hardware._cpu_profile_id("AMD EPYC 9554 64-Core Processor", 16, 16) == "cpu-amd-epyc-9554-16c-16t"
    assert slugify("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, props: Any = H100) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)


def test_gpu_without_nvml_library_falls_back_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    _fake_cuda(monkeypatch)

    def no_library() -> None:
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    profile = detect("auto")
    assert profile.kind == "cuda"
    assert profile.profile_id == "nvidia-h100-80gb-hbm3"
    assert profile.gpu is not None
    assert profile.gpu.memory_total_bytes == H100.total_memory
    assert profile.gpu.compute_capability == "9.0"
    assert profile.gpu.driver_version is None
    assert any("NVML unavailable" in note for note in profile.notes)


def test_gpu_without_nvidia_ml_py_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    profile = detect("cuda:0")
    assert profile.profile_id == "nvidia-h100-80gb-hbm3"
    assert any("pip install nvidia-ml-py" in note for note in profile.notes)


def _fake_nvml(mig: int = 0) -> types.ModuleType:
    """A stand-in for pynvml with the calls hardware.py makes; values of an H100 SXM."""
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def unsupported(*_a: Any) -> None:
        raise NVMLError("Not Supported")

    m.NVMLError = NVMLError  # type: ignore[attr-defined]
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM = 1, 2  # type: ignore[attr-defined]
    m.nvmlClocksThrottleReasonGpuIdle = 1  # type: ignore[attr-defined]
    m.nvmlClocksThrottleReasonSwPowerCap = 4  # type: ignore[attr-defined]
    m.nvmlClocksThrottleReasonAll = 0xFF  # type: ignore[attr-defined]
    calls = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda i: f"handle{i}",
        "nvmlDeviceGetUUID": lambda h: b"GPU-1234",
        "nvmlDeviceGetName": lambda h: b"NVIDIA H100 80GB HBM3",
        "nvmlDeviceGetMemoryInfo": lambda h: types.SimpleNamespace(total=85_520_809_984),
        "nvmlDeviceGetCudaComputeCapability": lambda h: (9, 0),
        "nvmlSystemGetDriverVersion": lambda: "580.159.04",
        "nvmlSystemGetCudaDriverVersion": lambda: 13000,
        "nvmlDeviceGetEnforcedPowerLimit": lambda h: 700_000,
        "nvmlDeviceGetClockInfo": lambda h, kind: {1: 1980, 2: 2619}[kind],
        "nvmlDeviceGetMaxClockInfo": lambda h, kind: 1980,
        "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: 4,
        "nvmlDeviceGetMigMode": (lambda h: (mig, mig)) if mig >= 0 else unsupported,
    }
    for name, fn in calls.items():
        setattr(m, name, fn)
    return m


def test_gpu_profile_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    profile = detect("cuda")
    gpu = profile.gpu
    assert gpu is not None
    assert profile.profile_id == "nvidia-h100-80gb-hbm3"
    assert (gpu.driver_version, gpu.cuda_driver_version, gpu.power_limit_w) == ("580.159.04", "13.0", 700.0)
    assert (gpu.sm_clock_mhz, gpu.mem_clock_mhz, gpu.max_sm_clock_mhz) == (1980, 2619, 1980)
    assert gpu.throttle_reasons == ("SwPowerCap",)
    assert gpu.mig_mode == "disabled"
    assert gpu.uuid == "GPU-1234"
    assert profile.notes == ()
    assert "700 W limit" in profile.summary()


def test_mig_slice_gets_its_own_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(mig=1))
    assert detect("cuda").profile_id == "nvidia-h100-80gb-hbm3-mig"


def test_mig_query_unsupported_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(mig=-1))
    profile = detect("cuda")
    assert profile.gpu is not None
    assert profile.gpu.mig_mode is None


def test_old_card_names_keep_the_vendor(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, types.SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30, major=7, minor=5))
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert detect("cuda").profile_id == "nvidia-tesla-t4"
