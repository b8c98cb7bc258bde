"""Statistics on samples: percentiles (the one summary type of latencies), Mann-Whitney U (exact for small
samples) and percentile-bootstrap CIs of a median and of a ratio of medians.

Thin glue over ``scipy.stats``: it fixes the choices the gate depends on (one-sided test, exact or asymptotic,
seeded bootstrap) so callers never pass scipy options. Rounds of a benchmark are not normally distributed (a shared
machine adds a long right tail), so the gate uses a rank test, as asv does, rather than a t-test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


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


def mann_whitney_less(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value for "x tends to be smaller than y" (H1: P(X < Y) > 1/2)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not a.size or not b.size:
        raise ValueError("Mann-Whitney U needs samples on both sides")
    # not scipy's "auto" (exact only up to 8 per side): the gate's rule is exact while untied (the exact null
    # distribution assumes no ties) and m * n <= EXACT_LIMIT, else tie-corrected normal with continuity correction
    ties = np.unique(np.concatenate([a, b])).size < a.size + b.size
    method = "exact" if a.size * b.size <= EXACT_LIMIT and not ties else "asymptotic"
    return float(stats.mannwhitneyu(a, b, alternative="less", method=method, use_continuity=True).pvalue)


def _resamplable(samples: Sequence[float]) -> np.ndarray:
    # scipy wants two observations per sample; resampling [v, v] gives exactly what resampling [v] would
    a = np.asarray(samples, dtype=float)
    return np.repeat(a, 2) if a.size == 1 else a


def _percentile_ci(
    data: tuple[np.ndarray, ...], statistic: Callable[..., Any], confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    # percentile, not scipy's default BCa, which warns and gives NaN on constant samples (a coarse timer makes
    # them); a fixed seed makes the interval a function of the samples alone
    result = stats.bootstrap(
        data,
        statistic,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        paired=False,
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _median_ratio(now: np.ndarray, base: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(now, axis=axis) / np.median(base, axis=axis)


def bootstrap_median_ci(
    samples: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the median; seeded, so the same samples always give the same interval."""
    return _percentile_ci((_resamplable(samples),), np.median, confidence, resamples, seed)


def bootstrap_ratio_ci(
    now: Sequence[float], base: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of median(now) / median(base), resampling each side independently."""
    return _percentile_ci((_resamplable(now), _resamplable(base)), _median_ratio, confidence, resamples, seed)


def iqr(samples: Sequence[float]) -> tuple[float, float]:
    q1, q3 = np.percentile(np.asarray(samples, dtype=float), [25, 75])
    return float(q1), float(q3)
