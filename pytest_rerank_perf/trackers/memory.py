"""Peak memory: torch's allocator peaks, and the process's VRAM as NVML sees it (sampled in a thread).

The cell runner empties the cache before a cell's warm-up and this tracker resets the peaks when its rounds start,
so a cell's figure is what its own work holds at its peak, not what earlier cells or tests left cached. NVML also
sees memory outside torch's allocator (CUDA context, cuBLAS workspaces). A null figure always has its reason in
``why_null`` (the CPU, no NVML, a container's pid namespace, a failed query).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..machine import device as dev
from ..machine import nvml
from .base import Span
from .sampling import PeriodicSampler


def _max(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else max(a or 0, b or 0)


@dataclass(frozen=True)
class MemoryResult:
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    nvml_peak_process_bytes: int | None  # None where NVML cannot see this process (no NVML, pid namespace)
    nvml_peak_device_used_bytes: int | None  # the whole device, for when the process figure is unavailable
    added_bytes: int | None = None  # the cell's own peak above what was resident when its rounds started
    why_null: Mapping[str, str] = field(default_factory=dict)  # cell field -> why it is null

    def cell_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "peak_vram_allocated_bytes": self.peak_allocated_bytes,
            "peak_vram_reserved_bytes": self.peak_reserved_bytes,
            "peak_vram_added_bytes": self.added_bytes,
            "nvml_peak_process_bytes": self.nvml_peak_process_bytes,
            "nvml_peak_device_used_bytes": self.nvml_peak_device_used_bytes,
        }
        why = {name: reason for name, reason in self.why_null.items() if fields.get(name) is None}
        if why:
            fields["why_null"] = why
        return fields

    def merge(self, other: MemoryResult) -> MemoryResult:
        return MemoryResult(
            _max(self.peak_allocated_bytes, other.peak_allocated_bytes),
            _max(self.peak_reserved_bytes, other.peak_reserved_bytes),
            _max(self.nvml_peak_process_bytes, other.nvml_peak_process_bytes),
            _max(self.nvml_peak_device_used_bytes, other.nvml_peak_device_used_bytes),
            _max(self.added_bytes, other.added_bytes),
            {**other.why_null, **self.why_null},
        )


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class NvmlSampler:
    """Samples NVML memory every ``interval_s`` in a daemon thread between start() and stop().

    No query failure stops it (nvidia-ml-py raises errors outside ``NVMLError`` too); each is kept as the reason the
    figure it would have given is null.
    """

    def __init__(self, device: str, interval_s: float = 0.005) -> None:
        self._sampler = PeriodicSampler(self._sample, interval_s, "rerank-nvml-memory")
        self.peak_process: int | None = None
        self.peak_device: int | None = None
        self.why_null: dict[str, str] = {}
        self._pynvml: Any = None
        self._handle: Any = None
        self._unusable = "NVML: not measured on the CPU"
        if dev.is_cuda(device):
            try:
                self._pynvml, self._handle = nvml.device_handle(device)
            except Exception as exc:  # NVML absent or unusable: the torch figures still stand
                self._unusable = f"NVML is unusable here ({_error(exc)})"

    def _sample_device(self) -> None:
        try:
            used = int(self._pynvml.nvmlDeviceGetMemoryInfo(self._handle).used)
        except Exception as exc:
            self.why_null.setdefault("nvml_peak_device_used_bytes", f"NVML's memory query failed ({_error(exc)})")
            return
        self.peak_device = max(self.peak_device or 0, used)

    def _sample_process(self) -> None:
        pid = os.getpid()
        try:
            procs = list(self._pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle))
        except Exception as exc:  # NVMLLibraryMismatchError: a driver without the v3 process query
            self.why_null.setdefault("nvml_peak_process_bytes", f"NVML's process query failed ({_error(exc)})")
            return
        mine = [p for p in procs if p.pid == pid]
        if not mine:
            self.why_null.setdefault(
                "nvml_peak_process_bytes",
                f"NVML lists {len(procs)} process(es) on this GPU, none with this pid ({pid}): in a container NVML "
                "reports host pids"
                if procs
                else "NVML lists no process on this GPU (a container or a virtual GPU hides them)",
            )
        for proc in mine:
            if proc.usedGpuMemory is None:
                self.why_null.setdefault("nvml_peak_process_bytes", "NVML reports no per-process memory here")
            else:
                self.peak_process = max(self.peak_process or 0, int(proc.usedGpuMemory))

    def _sample(self) -> None:
        self._sample_device()
        self._sample_process()

    def start(self) -> None:
        self.peak_process = self.peak_device = None
        self.why_null = {}
        if self._handle is None:
            self.why_null = dict.fromkeys(("nvml_peak_process_bytes", "nvml_peak_device_used_bytes"), self._unusable)
            return
        self._sampler.start()

    def stop(self) -> None:
        self._sampler.stop()

    @property
    def running(self) -> bool:
        return self._sampler.running


_CPU = "no device memory on the CPU"


class MemoryTracker:
    """Resets the peaks when the rounds start, so the figures are this cell's (the runner emptied the cache before
    its warm-up); ``added_bytes`` is the peak above what was allocated then (the resident weights)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.nvml = NvmlSampler(device)
        self._resident: int | None = None

    def start(self) -> None:
        dev.reset_peaks(self.device)
        self._resident = dev.allocated(self.device)
        self.nvml.start()

    def stop(self) -> None:
        self.nvml.stop()

    def result(self, span: Span) -> MemoryResult:
        allocated, reserved = dev.peaks(self.device)
        added = None if allocated is None or self._resident is None else allocated - self._resident
        why = dict(self.nvml.why_null)
        if not dev.is_cuda(self.device):
            why.update(dict.fromkeys(("peak_vram_allocated_bytes", "peak_vram_reserved_bytes"), _CPU))
            why["peak_vram_added_bytes"] = _CPU
        return MemoryResult(allocated, reserved, self.nvml.peak_process, self.nvml.peak_device, added, why)
