"""Statistics on samples: percentiles (the one summary type of latencies), Mann-Whitney U (exact for small
samples) and a bootstrap CI of a ratio of medians.

Kept free of scipy (not a dependency). Rounds of a benchmark are not normally distributed (a shared machine adds
a long right tail), so the gate uses a rank test, as asv does, rather than a t-test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Percentiles:
    """Summary of a set of durations (seconds): per call, per batch, per request."""

    median: float
    p90: float
    p95: float
    p99: float
    mean: float
    max: float
    count: int

    @staticmethod
    def of(samples: Sequence[float]) -> Percentiles:
        if not len(samples):
            raise ValueError("no samples")
        a = np.asarray(samples, dtype=float)
        p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
        return Percentiles(float(p50), float(p90), float(p95), float(p99), float(a.mean()), float(a.max()), len(a))

    @property
    def p50(self) -> float:
        return self.median

    def to_dict(self) -> dict[str, float | int]:
        """``median`` and ``p50`` both: cell tables read the one, load tables the other."""
        return {
            "median": self.median,
            "p50": self.median,
            "p90": self.p90,
            "p95": self.p95,
            "p99": self.p99,
            "mean": self.mean,
            "max": self.max,
            "count": self.count,
        }


EXACT_LIMIT = 2500  # m * n up to which the exact null distribution of U is used (no ties)


def _midranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@lru_cache(maxsize=256)
def _exact_cdf(m: int, n: int) -> tuple[float, ...]:
    """P(U <= u) for u = 0..m*n under the null, no ties: counts of arrangements by U, built up one sample at a time."""
    # counts[j][u]: arrangements of i x-values and j y-values with U = u, advanced over i
    counts = [np.zeros(m * n + 1) for _ in range(n + 1)]
    for j in range(n + 1):
        counts[j][0] = 1.0
    for _ in range(1, m + 1):
        new = [np.zeros(m * n + 1) for _ in range(n + 1)]
        new[0][0] = 1.0
        for j in range(1, n + 1):
            # the largest of the i + j values is either an x (beats all j y's: U += j) or a y
            new[j] = new[j - 1].copy()
            new[j][j:] += counts[j][: m * n + 1 - j]
        counts = new
    dist = counts[n]
    return tuple(np.cumsum(dist) / dist.sum())


def mann_whitney_less(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value for "x tends to be smaller than y" (H1: P(X < Y) > 1/2)."""
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        raise ValueError("Mann-Whitney U needs samples on both sides")
    values = np.concatenate([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    ranks = _midranks(values)
    u_x = float(ranks[:m].sum() - m * (m + 1) / 2)  # number of (x, y) pairs with x > y (ties count half)
    ties = len(np.unique(values)) < len(values)
    if m * n <= EXACT_LIMIT and not ties:
        return _exact_cdf(m, n)[round(u_x)]
    mean = m * n / 2
    _, counts = np.unique(values, return_counts=True)
    total = m + n
    var = m * n / 12 * ((total + 1) - float((counts**3 - counts).sum()) / (total * (total - 1)))
    if var <= 0:
        return 0.5 if u_x == mean else (0.0 if u_x < mean else 1.0)
    z = (u_x - mean + 0.5) / math.sqrt(var)  # continuity correction towards the null
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _boot_medians(rng: np.random.Generator, samples: Sequence[float], resamples: int) -> np.ndarray:
    a = np.asarray(samples, dtype=float)
    return np.median(rng.choice(a, size=(resamples, len(a))), axis=1)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_median_ci(
    samples: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the median; seeded, so the same samples always give the same interval."""
    return _interval(_boot_medians(np.random.default_rng(seed), samples, resamples), confidence)


def bootstrap_ratio_ci(
    now: Sequence[float], base: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of median(now) / median(base), resampling each side independently."""
    rng = np.random.default_rng(seed)
    return _interval(_boot_medians(rng, now, resamples) / _boot_medians(rng, base, resamples), confidence)


def iqr(samples: Sequence[float]) -> tuple[float, float]:
    q1, q3 = np.percentile(np.asarray(samples, dtype=float), [25, 75])
    return float(q1), float(q3)
