"""SM clocks and throttle reasons during a cell's rounds, sampled from NVML, so a cell measured on a throttled GPU
is flagged instead of being compared as if the code had slowed down.

Thermal and hardware slowdowns (``THROTTLING``) make a cell ``throttled``: the gate does not compare it. The power
cap (``SwPowerCap``) is how many GPUs run under sustained load, so it is reported but not disqualifying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..machine import device as dev
from ..machine import nvml
from ..machine.hardware import throttle_names
from .base import Span
from .sampling import PeriodicSampler

THROTTLING = frozenset({"HwSlowdown", "SwThermalSlowdown", "HwThermalSlowdown", "HwPowerBrakeSlowdown"})


@dataclass(frozen=True)
class ClockResult:
    sm_mhz: tuple[int, ...]  # every sample of the SM clock
    max_sm_mhz: int | None
    reasons: tuple[str, ...]  # every throttle reason seen in any sample
    why_null: str | None = None

    @property
    def throttled(self) -> bool | None:
        return None if not self.sm_mhz else bool(THROTTLING.intersection(self.reasons))

    def cell_fields(self) -> dict[str, Any]:
        if not self.sm_mhz:
            why = self.why_null or "no clock sample"
            return {"clocks": None, "throttled": None, "why_null": {"clocks": why, "throttled": why}}
        ordered = sorted(self.sm_mhz)
        clocks = {
            "sm_mhz_min": ordered[0],
            "sm_mhz_median": ordered[len(ordered) // 2],
            "max_sm_mhz": self.max_sm_mhz,
            "reasons": list(self.reasons),
        }
        return {"clocks": clocks, "throttled": self.throttled}

    def merge(self, other: ClockResult) -> ClockResult:
        reasons = tuple(sorted({*self.reasons, *other.reasons}))
        return ClockResult(self.sm_mhz + other.sm_mhz, self.max_sm_mhz, reasons, self.why_null or other.why_null)


class ClockTracker:
    def __init__(self, device: str, interval_s: float = 0.05) -> None:
        self._sampler = PeriodicSampler(self._sample, interval_s, "rerank-nvml-clocks")
        self._pynvml: Any = None
        self._handle: Any = None
        self.why_null: str | None = None
        self._mhz: list[int] = []
        self._reasons: set[str] = set()
        self._failed = False  # a sample failed: the throttle state of the rounds is unknown
        self.max_sm_mhz: int | None = None
        if not dev.is_cuda(device):
            self.why_null = "GPU clocks: not measured on the CPU"
            return
        try:
            self._pynvml, self._handle = nvml.device_handle(device)
            self.max_sm_mhz = int(self._pynvml.nvmlDeviceGetMaxClockInfo(self._handle, self._pynvml.NVML_CLOCK_SM))
        except Exception as exc:
            self.why_null = f"NVML gives no clocks here ({type(exc).__name__}: {exc})"
            self._handle = None

    def _sample(self) -> None:
        nv = self._pynvml
        try:  # both or neither: a clock sample without its reasons would read as "not throttled"
            mhz = int(nv.nvmlDeviceGetClockInfo(self._handle, nv.NVML_CLOCK_SM))
            mask = nvml.throttle_mask(nv, self._handle)
        except Exception as exc:
            self.why_null = f"an NVML clock query failed ({type(exc).__name__}: {exc})"
            self._failed = True
            return
        self._mhz.append(mhz)
        self._reasons.update(throttle_names(nv, mask))

    def start(self) -> None:
        self._mhz, self._reasons, self._failed = [], set(), False
        if self._handle is not None:
            self._sampler.start()

    def stop(self) -> None:
        self._sampler.stop()

    def result(self, span: Span) -> ClockResult:
        if self._failed:  # some of the rounds went unwatched: never "not throttled"
            return ClockResult((), self.max_sm_mhz, tuple(sorted(self._reasons)), self.why_null)
        return ClockResult(tuple(self._mhz), self.max_sm_mhz, tuple(sorted(self._reasons)), self.why_null)
