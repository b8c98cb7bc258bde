"""The regression gate: this run's cells against the baseline section for the same profile and model identity.

A metric of a cell is a **regression** only when both hold (as in asv and criterion):
- the change is statistically significant: one-sided Mann-Whitney U on the round samples, p < alpha;
- the change is beyond the metric's threshold (relative; per metric, overridable per cell pattern).
Peak VRAM is deterministic for a given code path (one value per cell), so it is judged on the threshold alone.
Improvements beyond the threshold are reported the same way, so a stale baseline can be refreshed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from .baseline import RECORD_COMMAND, BaselineCell, ModelBaseline
from .errors import UsageError
from .stats import bootstrap_ratio_ci, mann_whitney_less

Metric = Literal["throughput", "latency", "vram", "max_batch"]
METRICS: tuple[Metric, ...] = ("throughput", "latency", "vram", "max_batch")
HIGHER_IS_BETTER = {"throughput": True, "latency": False, "vram": False, "max_batch": True}
DEFAULT_ALPHA = 0.01
# GPU kernels repeat to within ~1%: 5% is far outside their noise. On a shared CPU, one process differs from the
# next by 3-5% (measured: README, "Detection power"), so 5% there would fire on noise; 15% does not.
DEFAULT_THRESHOLDS: dict[str, dict[Metric, float]] = {
    "cuda": {"throughput": 0.05, "latency": 0.05, "vram": 0.05, "max_batch": 0.05},
    "cpu": {"throughput": 0.15, "latency": 0.15, "vram": 0.05, "max_batch": 0.05},
}
Verdict = Literal["regression", "improvement", "unchanged"]


@dataclass(frozen=True)
class ThresholdRule:
    pattern: str  # fnmatch pattern on the cell key "<workload>-n<pairs>/bs<batch>"; "*" for every cell
    metric: Metric
    value: float


@dataclass(frozen=True)
class GateSettings:
    defaults: dict[Metric, float]
    rules: tuple[ThresholdRule, ...] = ()
    alpha: float = DEFAULT_ALPHA

    def threshold(self, cell: str, metric: Metric) -> float:
        """The last rule matching the cell wins; else the default."""
        value = self.defaults[metric]
        for rule in self.rules:
            if rule.metric == metric and fnmatch.fnmatchcase(cell, rule.pattern):
                value = rule.value
        return value

    @staticmethod
    def for_device(device_kind: str, rules: Sequence[ThresholdRule] = (), alpha: float = DEFAULT_ALPHA) -> GateSettings:
        return GateSettings(dict(DEFAULT_THRESHOLDS["cuda" if device_kind == "cuda" else "cpu"]), tuple(rules), alpha)


def parse_percent(text: str, what: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number; write 5% or 0.05") from None
    if not 0 < value < 10:
        raise UsageError(f"{what}: {text!r} must be above 0 (5% or 0.05)")
    return value


def parse_alpha(text: str, what: str) -> float:
    try:
        alpha = float(text)
    except ValueError:
        raise UsageError(f"{what} {text!r}: expected a probability such as 0.01") from None
    if not 0 < alpha < 0.5:
        raise UsageError(f"{what} {alpha}: must be between 0 and 0.5 (exclusive), e.g. 0.01")
    return alpha


def parse_threshold_rules(lines: Iterable[str]) -> tuple[ThresholdRule, ...]:
    """``[PATTERN:]METRIC=VALUE`` per line, e.g. ``throughput=5%`` or ``*-n10/bs1:latency=10%``."""
    rules = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        left, sep, value = text.rpartition("=")
        if not sep:
            raise UsageError(f"threshold {text!r}: write [PATTERN:]METRIC=VALUE, e.g. throughput=5%")
        pattern, _, metric = left.strip().rpartition(":")
        metric = metric.strip()
        if metric not in METRICS:
            raise UsageError(f"threshold {text!r}: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        rules.append(ThresholdRule(pattern.strip() or "*", metric, parse_percent(value, f"threshold {text!r}")))
    return tuple(rules)


@dataclass(frozen=True)
class MetricComparison:
    cell: str
    metric: Metric
    baseline: float  # median (or the single value, for VRAM)
    now: float
    change: float  # now / baseline - 1
    threshold: float
    p_value: float | None  # one-sided, in the direction of the change; None where there are no samples
    ci: tuple[float, float] | None  # 95% bootstrap CI of now / baseline - 1
    verdict: Verdict

    @property
    def worse(self) -> bool:
        return (self.change < 0) == HIGHER_IS_BETTER[self.metric] and self.change != 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_samples(
    cell: str, metric: Metric, base: Sequence[float], now: Sequence[float], settings: GateSettings, ci: bool = True
) -> MetricComparison:
    """Judge one timed metric; ``ci=False`` skips the bootstrap interval, which is shown but never decides."""
    threshold = settings.threshold(cell, metric)
    b_med, n_med = float(np.median(base)), float(np.median(now))
    change = n_med / b_med - 1
    # p-value for "now moved in the direction it moved": now < base if it dropped, base < now if it rose
    p = mann_whitney_less(now, base) if change < 0 else mann_whitney_less(base, now)
    interval = None
    if ci:
        lo, hi = bootstrap_ratio_ci(now, base)
        interval = (lo - 1, hi - 1)
    beyond = abs(change) > threshold
    verdict: Verdict = "unchanged"
    if beyond and p < settings.alpha:
        worse = (change < 0) == HIGHER_IS_BETTER[metric]
        verdict = "regression" if worse else "improvement"
    return MetricComparison(cell, metric, b_med, n_med, change, threshold, p, interval, verdict)


def compare_value(cell: str, metric: Metric, base: float, now: float, settings: GateSettings) -> MetricComparison:
    """A deterministic figure (peak VRAM, the OOM boundary): the threshold alone decides."""
    threshold = settings.threshold(cell, metric)
    change = now / base - 1
    verdict: Verdict = "unchanged"
    if abs(change) > threshold:
        verdict = "regression" if (change < 0) == HIGHER_IS_BETTER[metric] else "improvement"
    return MetricComparison(cell, metric, base, now, change, threshold, None, None, verdict)


def compare_cell(base: BaselineCell, now: BaselineCell, settings: GateSettings) -> list[MetricComparison]:
    out = [compare_samples(now.key, "throughput", base.throughput.samples, now.throughput.samples, settings)]
    if base.latency and now.latency:
        out.append(compare_samples(now.key, "latency", base.latency.samples, now.latency.samples, settings))
    if base.peak_vram_bytes and now.peak_vram_bytes:
        out.append(compare_value(now.key, "vram", base.peak_vram_bytes, now.peak_vram_bytes, settings))
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


Status = Literal["pass", "fail", "no-baseline"]


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
        """The inverse of ``to_dict``, for re-rendering a saved report."""
        comparisons = tuple(
            MetricComparison(**{**c, "ci": tuple(c["ci"]) if c.get("ci") else None}) for c in data["comparisons"]
        )
        return GateReport(data["status"], data["baseline_path"], data["model_key"], comparisons,
                          tuple(data["unmatched_cells"]), tuple(data["warnings"]), data["message"])  # fmt: skip


def gate(
    base: ModelBaseline | None,
    now: ModelBaseline,
    settings: GateSettings,
    baseline_path: str,
    model_key: str,
) -> GateReport:
    """Compare every measured cell that the baseline also has."""
    if base is None:
        return GateReport(
            "no-baseline", baseline_path, model_key,
            message=f"no baseline for {model_key} in {baseline_path}; record one with `{RECORD_COMMAND}`",
        )  # fmt: skip
    comparisons: list[MetricComparison] = []
    unmatched = []
    for key, cell in now.cells.items():
        if key in base.cells:
            comparisons += compare_cell(base.cells[key], cell, settings)
        else:
            unmatched.append(key)
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
    return GateReport(
        "fail" if regressions else "pass", baseline_path, model_key, tuple(comparisons), tuple(unmatched),
        tuple(environment_warnings(base, now.hardware, now.software)), message,
    )  # fmt: skip
