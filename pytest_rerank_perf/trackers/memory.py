"""Peak memory: torch's allocator peaks, and the process's VRAM as NVML sees it (sampled in a thread).

The cell runner empties the cache before a cell's warm-up and this tracker resets the peaks when its rounds start,
so a cell's figure is what its own work holds at its peak, not what earlier cells or tests left cached. NVML also
sees memory outside torch's allocator (CUDA context, cuBLAS workspaces). On the CPU every figure is None,
with the reason.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from .. import device as dev
from .. import nvml
from .base import Span


def _max(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else max(a or 0, b or 0)


@dataclass(frozen=True)
class MemoryResult:
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    nvml_peak_process_bytes: int | None  # None where NVML cannot see this process (no NVML, pid namespace)
    nvml_peak_device_used_bytes: int | None  # the whole device, for when the process figure is unavailable
    why_null: str | None = None

    def cell_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "peak_vram_allocated_bytes": self.peak_allocated_bytes,
            "peak_vram_reserved_bytes": self.peak_reserved_bytes,
            "nvml_peak_process_bytes": self.nvml_peak_process_bytes,
            "nvml_peak_device_used_bytes": self.nvml_peak_device_used_bytes,
        }
        if self.why_null:
            fields["why_null"] = {"peak_vram_allocated_bytes": self.why_null}
        return fields

    def merge(self, other: MemoryResult) -> MemoryResult:
        return MemoryResult(
            _max(self.peak_allocated_bytes, other.peak_allocated_bytes),
            _max(self.peak_reserved_bytes, other.peak_reserved_bytes),
            _max(self.nvml_peak_process_bytes, other.nvml_peak_process_bytes),
            _max(self.nvml_peak_device_used_bytes, other.nvml_peak_device_used_bytes),
            self.why_null or other.why_null,
        )


class NvmlSampler:
    """Samples NVML memory every ``interval_s`` in a daemon thread between start() and stop()."""

    def __init__(self, device: str, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_process: int | None = None
        self.peak_device: int | None = None
        self._pynvml: Any = None
        self._handle: Any = None
        if dev.is_cuda(device):
            try:
                self._pynvml, self._handle = nvml.device_handle(device)
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
        except Exception:  # a failed query (NVMLError, or the library-mismatch error outside it) skips a sample
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        if self._handle is None:
            return
        self.peak_process = self.peak_device = None
        self._stop.clear()
        self._sample()  # a cell shorter than one interval still gets a reading at its start
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
        self.device = device
        self.nvml = NvmlSampler(device)

    def start(self) -> None:
        dev.reset_peaks(self.device)
        self.nvml.start()

    def stop(self) -> None:
        self.nvml.stop()

    def result(self, span: Span) -> MemoryResult:
        allocated, reserved = dev.peaks(self.device)
        why = None if dev.is_cuda(self.device) else "no device memory on the CPU"
        return MemoryResult(allocated, reserved, self.nvml.peak_process, self.nvml.peak_device, why)
