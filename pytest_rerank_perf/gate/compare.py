"""The regression gate: this run's cells against the baseline section for the same profile and model identity.

A metric of a cell is a **regression** only when both hold (as in asv and criterion):
- the change is statistically significant: one-sided Mann-Whitney U on the round samples, p < alpha;
- the change is beyond the metric's threshold (relative; per metric, overridable per cell pattern).
``value`` metrics (peak VRAM, energy, the OOM boundary) have one figure per cell and are judged on the threshold
alone. Improvements beyond the threshold are reported the same way, so a stale baseline can be refreshed. Which
metrics exist, their direction and their thresholds come from the ``Metric`` registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ..stats import bootstrap_ratio_ci, mann_whitney_less
from ..store.reader import RECORD_COMMAND
from ..store.schema import BaselineCell, ModelBaseline, cell_key
from ..trackers.metrics import CELL_GATED, metric
from .thresholds import GateSettings

Verdict = Literal["regression", "improvement", "unchanged"]
Status = Literal["pass", "fail", "incomplete", "no-baseline"]


@dataclass(frozen=True)
class MetricComparison:
    cell: str
    metric: str
    baseline: float  # median (or the single value)
    now: float
    change: float  # now / baseline - 1
    threshold: float
    p_value: float | None  # one-sided, in the direction of the change; None where there are no samples
    ci: tuple[float, float] | None  # 95% bootstrap CI of now / baseline - 1
    verdict: Verdict

    @property
    def worse(self) -> bool:
        return metric(self.metric).worse(self.change)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> MetricComparison:
        return MetricComparison(**{**data, "ci": tuple(data["ci"]) if data.get("ci") else None})


def _verdict(name: str, change: float, threshold: float, significant: bool) -> Verdict:
    if abs(change) <= threshold or not significant:
        return "unchanged"
    return "regression" if metric(name).worse(change) else "improvement"


def compare_samples(
    cell: str, name: str, base: Sequence[float], now: Sequence[float], settings: GateSettings, ci: bool = True
) -> MetricComparison:
    """Judge one timed metric; ``ci=False`` skips the bootstrap interval, which is shown but never decides."""
    threshold = settings.threshold(cell, name)
    b_med, n_med = float(np.median(base)), float(np.median(now))
    change = n_med / b_med - 1
    # p-value for "now moved in the direction it moved": now < base if it dropped, base < now if it rose
    p = mann_whitney_less(now, base) if change < 0 else mann_whitney_less(base, now)
    interval = None
    if ci:
        lo, hi = bootstrap_ratio_ci(now, base)
        interval = (lo - 1, hi - 1)
    verdict = _verdict(name, change, threshold, p < settings.alpha)
    return MetricComparison(cell, name, b_med, n_med, change, threshold, p, interval, verdict)


def compare_value(cell: str, name: str, base: float, now: float, settings: GateSettings) -> MetricComparison:
    """A deterministic figure (peak VRAM, energy, the OOM boundary): the threshold alone decides."""
    threshold = settings.threshold(cell, name)
    change = now / base - 1
    return MetricComparison(
        cell, name, base, now, change, threshold, None, None, _verdict(name, change, threshold, True)
    )


def compare_cell(base: BaselineCell, now: BaselineCell, settings: GateSettings) -> list[MetricComparison]:
    """Every registered metric that both sides measured and the gate judges on this device."""
    out = []
    for m in CELL_GATED:
        if not settings.judges(m.name):
            continue
        if m.kind == "samples":
            old, new = base.samples.get(m.name), now.samples.get(m.name)
            if old and new:
                out.append(compare_samples(now.key, m.name, old.samples, new.samples, settings))
            continue
        old_value, new_value = base.values.get(m.name), now.values.get(m.name)
        if old_value and new_value:
            out.append(compare_value(now.key, m.name, old_value, new_value, settings))
    return out


# software whose version change can move the figures: shown as a warning next to the verdict
_WATCHED = ("torch", "torch.cuda", "transformers", "sentence-transformers", "tokenizers", "python")


def environment_warnings(base: ModelBaseline, hardware: dict[str, Any], software: dict[str, str]) -> list[str]:
    warnings = []
    for name in _WATCHED:
        old, new = base.software.get(name), software.get(name)
        if old != new and (old or new):
            warnings.append(f"{name} {new or 'absent'} here, {old or 'absent'} in the baseline")
    old_gpu, new_gpu = base.hardware.get("gpu") or {}, hardware.get("gpu") or {}
    for name in ("driver_version", "power_limit_w", "mig_mode"):
        if old_gpu.get(name) != new_gpu.get(name):
            warnings.append(f"GPU {name} {new_gpu.get(name)} here, {old_gpu.get(name)} in the baseline")
    return warnings


@dataclass(frozen=True)
class GateReport:
    status: Status
    baseline_path: str
    model_key: str
    comparisons: tuple[MetricComparison, ...] = ()
    unmatched: tuple[str, ...] = ()  # cells measured now that the baseline does not have
    warnings: tuple[str, ...] = ()
    message: str = ""

    @property
    def regressions(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.verdict == "regression"]

    @property
    def improvements(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.verdict == "improvement"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "baseline_path": self.baseline_path,
            "model_key": self.model_key,
            "message": self.message,
            "regressions": len(self.regressions),
            "improvements": len(self.improvements),
            "warnings": list(self.warnings),
            "unmatched_cells": list(self.unmatched),
            "comparisons": [c.to_dict() for c in self.comparisons],
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> GateReport:
        """The inverse of ``to_dict``, for a saved report."""
        return GateReport(
            status=data["status"],
            baseline_path=data["baseline_path"],
            model_key=data["model_key"],
            comparisons=tuple(MetricComparison.from_dict(c) for c in data["comparisons"]),
            unmatched=tuple(data["unmatched_cells"]),
            warnings=tuple(data["warnings"]),
            message=data["message"],
        )

    def merge(self, other: GateReport) -> GateReport:
        """Two workers' verdicts (each against its own GPU's baseline) as one: it fails if either failed."""
        statuses = {self.status, other.status}
        order: tuple[Status, ...] = ("fail", "incomplete", "pass", "no-baseline")
        status = next(s for s in order if s in statuses)
        return GateReport(
            status=status,
            baseline_path=", ".join(sorted({*self.baseline_path.split(", "), *other.baseline_path.split(", ")})),
            model_key=self.model_key,
            comparisons=self.comparisons + other.comparisons,
            unmatched=tuple(sorted({*self.unmatched, *other.unmatched})),
            warnings=tuple(sorted({*self.warnings, *other.warnings})),
            message=f"{self.message} | {other.message}",
        )


def throttled_cells(cells: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Cell key -> throttle reasons, for the cells (report JSON) measured while the GPU was throttled."""
    return {
        cell_key(c["workload_id"], c["batch_size"]): (c.get("clocks") or {}).get("reasons") or ["unknown"]
        for c in cells
        if c.get("throttled")
    }


def unwatched_cells(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """GPU cells whose throttle state is unknown (no NVML clocks): compared, with a warning."""
    return [
        cell_key(c["workload_id"], c["batch_size"])
        for c in cells
        if c.get("status") == "ok" and str(c.get("device", "")).startswith("cuda") and c.get("throttled") is None
    ]


def gate(
    base: ModelBaseline | None,
    now: ModelBaseline,
    settings: GateSettings,
    baseline_path: str,
    model_key: str,
    throttled: Mapping[str, Sequence[str]] | None = None,
    unwatched: Sequence[str] = (),
) -> GateReport:
    """Compare every measured cell that the baseline also has. A cell measured on a throttled GPU (``throttled``:
    cell key -> throttle reasons) is not compared: the run is ``incomplete``, never a pass."""
    if base is None:
        message = f"no baseline for {model_key} in {baseline_path}; record one with `{RECORD_COMMAND}`"
        return GateReport("no-baseline", baseline_path, model_key, message=message)
    comparisons: list[MetricComparison] = []
    unmatched = []
    throttled = throttled or {}
    for key, cell in now.cells.items():
        if key in throttled:
            continue
        if key in base.cells:
            comparisons += compare_cell(base.cells[key], cell, settings)
        else:
            unmatched.append(key)
    if settings.judges("max_batch"):
        for length, now_max in now.oom_boundaries.items():
            if base.oom_boundaries.get(length):
                name = f"oom-boundary/L{length}"
                comparisons.append(compare_value(name, "max_batch", base.oom_boundaries[length], now_max, settings))
    regressions = sum(c.verdict == "regression" for c in comparisons)
    message = (
        f"{regressions} regression(s) beyond threshold and significant at p < {settings.alpha}"
        if regressions
        else f"no significant regression in {len(comparisons)} comparisons"
    )
    warnings = tuple(environment_warnings(base, now.hardware, now.software)) + tuple(
        f"{key} was measured while the GPU was throttled ({', '.join(reasons)}): not compared; let it cool or check "
        "its power and cooling, then run again"
        for key, reasons in sorted(throttled.items())
    )
    if unwatched:
        warnings += (f"the GPU's throttle state is unknown for {len(unwatched)} cell(s) (see why_null.throttled)",)
    status: Status = "fail" if regressions else "incomplete" if throttled else "pass"
    if throttled and not regressions:
        message = f"{len(throttled)} cell(s) measured on a throttled GPU were not compared; {message}"
    return GateReport(status, baseline_path, model_key, tuple(comparisons), tuple(unmatched), warnings, message)
