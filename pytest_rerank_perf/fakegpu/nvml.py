"""A stand-in for ``pynvml`` (nvidia-ml-py) over a ``FakeCuda``'s devices, with the quirks real drivers show.

- ``NVMLError`` and its subclasses, and ``NVMLLibraryMismatchError`` *outside* that hierarchy (nvidia-ml-py 13
  raises it for the process query on drivers without the v3 call: ``process_query="mismatch"``);
- bytes or str returns (``strings="bytes"`` as older bindings);
- a MIG slice: NVML enumerates the parent GPU, whose memory query needs privileges (``NoPermission``), and the
  slice's own handle, with a ``MIG-`` UUID, reached through the MIG calls;
- host pids (``host_pids=True``): inside a container the process list holds pids of the host's namespace;
- the total-energy counter in millijoules, SM clocks, and throttle reasons (``throttle_mask``, settable mid-run).
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from typing import Any

from ..machine import device as dev
from .cuda import FakeCuda, FakeDevice

CONTEXT_BYTES = 500 * 2**20  # the CUDA context and cuBLAS workspaces: NVML sees them, torch's allocator does not


class NVMLError(Exception):
    def __init__(self, value: str = "Unknown Error") -> None:
        super().__init__(value)
        self.value = value


class NVMLError_NotSupported(NVMLError):
    def __init__(self) -> None:
        super().__init__("Not Supported")


class NVMLError_NoPermission(NVMLError):
    def __init__(self) -> None:
        super().__init__("Insufficient Permissions")


class NVMLError_NotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__("Not Found")


class NVMLError_LibraryNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__("NVML Shared Library Not Found")


class NVMLLibraryMismatchError(Exception):
    """Not an ``NVMLError``: raised by nvidia-ml-py 13 where the driver lacks a versioned query."""


@dataclass(frozen=True)
class Handle:
    device: FakeDevice
    index: int
    mig: bool  # the handle of the MIG slice itself (False: the whole GPU, or the parent of a slice)


@dataclass(frozen=True)
class Process:
    pid: int
    usedGpuMemory: int | None


class FakeNvml(types.SimpleNamespace):
    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2
    nvmlClocksThrottleReasonNone = 0
    nvmlClocksThrottleReasonGpuIdle = 0x1
    nvmlClocksThrottleReasonApplicationsClocksSetting = 0x2
    nvmlClocksThrottleReasonSwPowerCap = 0x4
    nvmlClocksThrottleReasonHwSlowdown = 0x8
    nvmlClocksThrottleReasonSyncBoost = 0x10
    nvmlClocksThrottleReasonSwThermalSlowdown = 0x20
    nvmlClocksThrottleReasonHwThermalSlowdown = 0x40
    nvmlClocksThrottleReasonHwPowerBrakeSlowdown = 0x80
    nvmlClocksThrottleReasonAll = 0x1FF
    NVMLError, NVMLLibraryMismatchError = NVMLError, NVMLLibraryMismatchError
    NVMLError_NotSupported, NVMLError_NoPermission = NVMLError_NotSupported, NVMLError_NoPermission
    NVMLError_NotFound, NVMLError_LibraryNotFound = NVMLError_NotFound, NVMLError_LibraryNotFound

    def __init__(
        self,
        cuda: FakeCuda,
        strings: str = "str",
        host_pids: bool = False,
        process_query: str = "ok",
        other_processes: int = 0,
        library: bool = True,
        power_w: float = 300.0,
        throttle_mask: int = 0,
    ) -> None:
        super().__init__()
        self.cuda, self.strings, self.host_pids = cuda, strings, host_pids
        self.process_query, self.other_processes, self.library, self.power_w = (
            process_query,
            other_processes,
            library,
            power_w,
        )
        self.throttle_mask = throttle_mask  # NVML's throttle-reason bits; settable mid-run
        self.initialised = 0

    def _text(self, value: str) -> Any:
        return value.encode() if self.strings == "bytes" else value

    def _init_check(self) -> None:
        if not self.initialised:
            raise NVMLError("Uninitialized")

    def nvmlInit(self) -> None:
        if not self.library:
            raise NVMLError_LibraryNotFound()
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised = max(0, self.initialised - 1)

    def nvmlSystemGetDriverVersion(self) -> Any:
        return self._text("580.95.05")

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 13000

    def nvmlDeviceGetCount(self) -> int:
        self._init_check()
        return len(self.cuda.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:
        self._init_check()
        if not 0 <= index < len(self.cuda.devices):
            raise NVMLError("Invalid Argument")
        return Handle(self.cuda.devices[index], index, mig=False)

    def _spec(self, h: Handle) -> Any:
        spec = h.device.spec
        return spec if h.mig or spec.parent is None else spec.parent

    def nvmlDeviceGetName(self, h: Handle) -> Any:
        return self._text(self._spec(h).torch_name)

    def nvmlDeviceGetUUID(self, h: Handle) -> Any:
        spec = h.device.spec
        if spec.parent is not None and not h.mig:
            return self._text(spec.parent.uuid(h.index))
        return self._text(spec.uuid(h.index))

    def nvmlDeviceGetMigMode(self, h: Handle) -> tuple[int, int]:
        if h.mig:
            raise NVMLError_NotSupported()
        enabled = int(h.device.spec.parent is not None)
        return enabled, enabled

    def nvmlDeviceGetMaxMigDeviceCount(self, h: Handle) -> int:
        return 7 if h.device.spec.parent is not None and not h.mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: Handle, slot: int) -> Handle:
        if slot != 0 or h.device.spec.parent is None:
            raise NVMLError_NotFound()
        return Handle(h.device, h.index, mig=True)

    def nvmlDeviceIsMigDeviceHandle(self, h: Handle) -> int:
        return int(h.mig)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h: Handle) -> Handle:
        return Handle(h.device, h.index, mig=False)

    def nvmlDeviceGetCudaComputeCapability(self, h: Handle) -> tuple[int, int]:
        return h.device.spec.capability

    def nvmlDeviceGetMemoryInfo(self, h: Handle) -> Any:
        if h.device.spec.parent is not None and not h.mig:
            raise NVMLError_NoPermission()  # a MIG parent's memory needs privileges
        total = self._spec(h).memory_bytes
        used = CONTEXT_BYTES + h.device.allocator.reserved + self.other_processes * CONTEXT_BYTES
        return types.SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetComputeRunningProcesses(self, h: Handle) -> list[Process]:
        if self.process_query == "mismatch":
            raise NVMLLibraryMismatchError("Unversioned function called and the pyNVML version does not match")
        pid = os.getpid() + (4_000_000 if self.host_pids else 0)
        procs = [Process(pid, CONTEXT_BYTES + h.device.allocator.reserved)]
        return procs + [Process(pid + 1 + i, CONTEXT_BYTES) for i in range(self.other_processes)]

    def nvmlDeviceGetEnforcedPowerLimit(self, h: Handle) -> int:
        return self._spec(h).power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: Handle) -> int:
        if h.mig:
            raise NVMLError_NotSupported()
        # millijoules since some moment (only differences are read), at full power on the device clock: a test's
        # virtual clock makes the energy of a cell as deterministic as its time
        return int(dev.clock() * self.power_w * 1000) + 1_000_000

    def nvmlDeviceGetMaxClockInfo(self, h: Handle, clock: int) -> int:
        return self._spec(h).max_sm_mhz if clock == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetClockInfo(self, h: Handle, clock: int) -> int:
        if clock != self.NVML_CLOCK_SM:
            return 2619
        slowed = self.throttle_mask & ~(self.nvmlClocksThrottleReasonGpuIdle | self.nvmlClocksThrottleReasonSwPowerCap)
        return self._spec(h).max_sm_mhz // (2 if slowed else 1)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: Handle) -> int:
        return self.throttle_mask
