"""Thresholds of the gate: per metric from the ``Metric`` registry, overridable per metric and cell pattern."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import UsageError
from ..trackers.metrics import GATED
from .drift import ASSUMED

DEFAULT_ALPHA = 0.01
GATED_NAMES = tuple(m.name for m in GATED)


@dataclass(frozen=True)
class ThresholdRule:
    pattern: str  # fnmatch pattern on the cell key "<workload>-n<pairs>/bs<batch>"; "*" for every cell
    metric: str
    value: float


@dataclass(frozen=True)
class GateSettings:
    defaults: dict[str, float]  # metric -> threshold; a metric without one is not judged on this device
    rules: tuple[ThresholdRule, ...] = ()
    alpha: float = DEFAULT_ALPHA
    assumed_drift: float = ASSUMED["cpu"]  # between-process drift where neither side measured it

    def threshold(self, cell: str, metric: str) -> float:
        """The last rule matching the cell wins; else the default."""
        value = self.defaults[metric]
        for rule in self.rules:
            if rule.metric == metric and fnmatch.fnmatchcase(cell, rule.pattern):
                value = rule.value
        return value

    def judges(self, metric: str) -> bool:
        return metric in self.defaults

    @staticmethod
    def for_device(device_kind: str, rules: Sequence[ThresholdRule] = (), alpha: float = DEFAULT_ALPHA) -> GateSettings:
        defaults = {m.name: t for m in GATED if (t := m.threshold(device_kind)) is not None}
        return GateSettings(defaults, tuple(rules), alpha, ASSUMED.get(device_kind, ASSUMED["cpu"]))


def parse_percent(text: str, what: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number; write 5% or 0.05") from None
    if not 0 < value < 10:
        raise UsageError(f"{what}: {text!r} must be above 0 and below 1000% (5% or 0.05)")
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
        if metric not in GATED_NAMES:
            raise UsageError(f"threshold {text!r}: unknown metric {metric!r}; use one of {', '.join(GATED_NAMES)}")
        rules.append(ThresholdRule(pattern.strip() or "*", metric, parse_percent(value, f"threshold {text!r}")))
    return tuple(rules)
