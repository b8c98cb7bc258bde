"""GPU energy per 1,000 pairs, from NVML's total-energy counter (millijoules since the driver loaded).

The counter is read when the measured rounds start and when they stop; the difference over the pairs scored in
between is the figure. It is None, with the reason, on the CPU, where NVML is unusable, where the GPU does not
offer the counter (before Volta, some virtual GPUs), or where it did not advance: never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..machine import device as dev
from ..machine import nvml
from .base import Span

FIELD = "energy_j_per_1k_pairs"


@dataclass(frozen=True)
class EnergyResult:
    joules: float | None
    pairs: int
    why_null: str | None = None

    @property
    def per_1k_pairs(self) -> float | None:
        return None if self.joules is None or not self.pairs else self.joules / self.pairs * 1000

    def cell_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {FIELD: self.per_1k_pairs}
        if self.per_1k_pairs is None:
            fields["why_null"] = {FIELD: self.why_null or "no pairs were scored"}
        return fields

    def merge(self, other: EnergyResult) -> EnergyResult:
        if self.joules is None or other.joules is None:
            return EnergyResult(None, self.pairs + other.pairs, self.why_null or other.why_null)
        return EnergyResult(self.joules + other.joules, self.pairs + other.pairs)


class EnergyTracker:
    def __init__(self, device: str) -> None:
        self._read: Any = None
        self.why_null: str | None = None
        self._start: int | None = None
        self._stop: int | None = None
        if not dev.is_cuda(device):
            self.why_null = "GPU energy: not measured on the CPU"
            return
        try:
            pynvml, handle = nvml.device_handle(device)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            self._read = lambda: int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception as exc:  # NVMLError_NotSupported, no NVML, or a binding without the query
            self.why_null = f"NVML offers no energy counter here ({type(exc).__name__}: {exc})"

    def _reading(self) -> int | None:
        if self._read is None:
            return None
        try:
            return int(self._read())
        except Exception as exc:
            self.why_null = f"the NVML energy counter could not be read ({type(exc).__name__}: {exc})"
            return None

    def start(self) -> None:
        self._start = self._reading()

    def stop(self) -> None:
        self._stop = self._reading()

    def result(self, span: Span) -> EnergyResult:
        if self._start is None or self._stop is None:
            return EnergyResult(None, span.pairs, self.why_null)
        if self._stop <= self._start:
            return EnergyResult(None, span.pairs, "the NVML energy counter did not advance during the rounds")
        return EnergyResult((self._stop - self._start) / 1000.0, span.pairs)
