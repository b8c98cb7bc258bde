"""Peak memory trackers: torch's allocator peaks, and the process's VRAM as NVML sees it (sampled).

torch's peaks (allocated: tensors; reserved: what the caching allocator holds) are reset before each cell. NVML
also sees memory outside torch's allocator (CUDA context, cuBLAS workspaces), so it is sampled in a background
thread while the cell runs. On the CPU every figure is None, never zero: "not measured" is not "no memory".
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MemoryResult:
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    nvml_peak_process_bytes: int | None  # this process's VRAM; None where NVML cannot see it (no NVML, pid namespace)
    nvml_peak_device_used_bytes: int | None  # the whole device, for when the process figure is unavailable


class TorchMemoryTracker:
    def __init__(self, device: str) -> None:
        self.device = device if device.startswith("cuda") else None

    def start(self) -> None:
        if self.device:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def result(self) -> tuple[int | None, int | None]:
        if not self.device:
            return None, None
        import torch

        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device)), int(torch.cuda.max_memory_reserved(self.device))


class NvmlSampler:
    """Samples NVML memory every ``interval_s`` in a daemon thread between start() and stop()."""

    def __init__(self, device: str, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self._handle: Any = None
        self._pynvml: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_process: int | None = None
        self.peak_device: int | None = None
        if device.startswith("cuda"):
            self._open(device)

    def _open(self, device: str) -> None:
        try:
            import pynvml
            import torch

            pynvml.nvmlInit()
            index = torch.device(device).index or 0
            uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
            from .hardware import _nvml_handle_for

            self._handle = _nvml_handle_for(pynvml, index, uuid)
            self._pynvml = pynvml
        except Exception:  # NVML absent or unusable: the torch figures still stand
            self._handle = None

    def _sample(self) -> None:
        nv, pid = self._pynvml, os.getpid()
        try:
            used = int(nv.nvmlDeviceGetMemoryInfo(self._handle).used)
            self.peak_device = max(self.peak_device or 0, used)
            for proc in nv.nvmlDeviceGetComputeRunningProcesses(self._handle):
                if proc.pid == pid and proc.usedGpuMemory is not None:
                    self.peak_process = max(self.peak_process or 0, int(proc.usedGpuMemory))
        except nv.NVMLError:
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        if self._handle is None:
            return
        self.peak_process = self.peak_device = None
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="rerank-nvml-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._sample()


class MemoryTracker:
    def __init__(self, device: str) -> None:
        self.torch = TorchMemoryTracker(device)
        self.nvml = NvmlSampler(device)

    def start(self) -> None:
        self.torch.start()
        self.nvml.start()

    def stop(self) -> None:
        self.nvml.stop()

    def result(self) -> MemoryResult:
        allocated, reserved = self.torch.result()
        return MemoryResult(allocated, reserved, self.nvml.peak_process, self.nvml.peak_device)
