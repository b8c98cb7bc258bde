"""One metric of one cell, this run against the baseline.

A timed metric of a cell is a **regression** only when all three hold:
- the change is beyond the metric's threshold (relative; per metric, overridable per cell pattern);
- the rounds moved: one-sided Mann-Whitney U on the round samples, p < alpha (as asv does);
- the processes moved: the mean process median is beyond what the between-process drift explains, p < alpha
  (``drift.py``): one process's rounds cannot see drift that is common to the whole process.
``value`` metrics (peak VRAM, energy, the OOM boundary) have one figure per cell and are judged on the threshold
alone. Improvements are judged the same way, so a stale baseline can be refreshed. Which metrics exist, their
direction and their thresholds come from the ``Metric`` registry.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..stats import bootstrap_ratio_ci, mann_whitney_less
from ..store.schema import BaselineCell, MetricSummary, ModelBaseline
from ..trackers.metrics import CELL_GATED, metric
from .drift import Drift, median_variance, pooled_drift, process_test
from .thresholds import GateSettings

Verdict = Literal["regression", "improvement", "unchanged"]


@dataclass(frozen=True)
class MetricComparison:
    cell: str
    metric: str
    baseline: float  # median (or the single value)
    now: float
    change: float  # now / baseline - 1
    threshold: float
    p_value: float | None  # rounds: one-sided, in the direction of the change; None where there are no samples
    ci: tuple[float, float] | None  # 95% bootstrap CI of now / baseline - 1
    verdict: Verdict
    drift_p: float | None = None  # processes: one-sided p of the mean process median against the drift
    mdr: float | None = None  # minimum detectable regression (fraction); the threshold for value metrics
    processes: tuple[int, int] = (1, 1)  # processes pooled: baseline, now

    @property
    def worse(self) -> bool:
        return metric(self.metric).worse(self.change)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> MetricComparison:
        processes = tuple(data.get("processes") or (1, 1))
        return MetricComparison(**{**data, "ci": tuple(data["ci"]) if data.get("ci") else None, "processes": processes})


def _verdict(name: str, change: float, threshold: float, significant: bool) -> Verdict:
    if abs(change) <= threshold or not significant:
        return "unchanged"
    return "regression" if metric(name).worse(change) else "improvement"


def compare_samples(
    cell: str, name: str, base: MetricSummary, now: MetricSummary, settings: GateSettings, drift: Drift, ci: bool = True
) -> MetricComparison:
    """Judge one timed metric; ``ci=False`` skips the bootstrap interval, which is shown but never decides."""
    threshold = settings.threshold(cell, name)
    change = now.median / base.median - 1
    # rounds: p for "now moved the way it moved": now < base if it dropped, base < now if it rose
    p = mann_whitney_less(now.samples, base.samples) if change < 0 else mann_whitney_less(base.samples, now.samples)
    worse_up = not metric(name).higher_is_better
    within = 0.0 if drift.measured else median_variance(base.samples) + median_variance(now.samples)
    processes = process_test(
        base.process_medians, now.process_medians, drift, settings.alpha, threshold, worse_up, change, within
    )
    interval = None
    if ci:
        lo, hi = bootstrap_ratio_ci(now.samples, base.samples)
        interval = (lo - 1, hi - 1)
    significant = p < settings.alpha and processes.p_value < settings.alpha
    return MetricComparison(
        cell,
        name,
        base.median,
        now.median,
        change,
        threshold,
        p,
        interval,
        _verdict(name, change, threshold, significant),
        processes.p_value,
        processes.mdr,
        (len(base.process_medians), len(now.process_medians)),
    )


def compare_value(cell: str, name: str, base: float, now: float, settings: GateSettings) -> MetricComparison:
    """A deterministic figure (peak VRAM, energy, the OOM boundary): the threshold alone decides."""
    threshold = settings.threshold(cell, name)
    change = now / base - 1
    verdict = _verdict(name, change, threshold, True)
    return MetricComparison(cell, name, base, now, change, threshold, None, None, verdict, mdr=threshold)


def compare_cell(
    base: BaselineCell, now: BaselineCell, settings: GateSettings, drifts: Mapping[str, Drift]
) -> list[MetricComparison]:
    """Every registered metric that both sides measured and the gate judges on this device (``drifts``: the
    between-process drift of each timed metric, pooled over the whole run by ``drifts_for``)."""
    out = []
    for m in CELL_GATED:
        if not settings.judges(m.name):
            continue
        if m.kind == "samples":
            old, new = base.samples.get(m.name), now.samples.get(m.name)
            if old and new:
                out.append(compare_samples(now.key, m.name, old, new, settings, drifts[m.name]))
            continue
        old_value, new_value = base.values.get(m.name), now.values.get(m.name)
        if old_value and new_value:
            out.append(compare_value(now.key, m.name, old_value, new_value, settings))
    return out


def drifts_for(
    base: ModelBaseline, now: ModelBaseline, settings: GateSettings, skip: Collection[str] = ()
) -> dict[str, Drift]:
    """Each timed metric's between-process drift, pooled over every cell of both sides but ``skip`` (throttled
    cells: a throttled process is no measure of the drift)."""
    out = {}
    for m in CELL_GATED:
        if m.kind == "samples":
            sides = [
                [c.samples[m.name].process_medians for k, c in s.cells.items() if m.name in c.samples and k not in skip]
                for s in (base, now)
            ]
            out[m.name] = pooled_drift(sides, settings.assumed_drift)
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
