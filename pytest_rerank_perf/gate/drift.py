"""Between-process drift, and what it lets the gate see.

A process on a shared machine is a little faster or slower than the next for its whole life (memory placement,
clocks, neighbours), so the rounds of one process understate how far a baseline recorded yesterday and a run today
differ when nothing changed. Every recorded cell keeps the median of each process pooled into it; the spread of
those medians around each cell's mean, pooled over cells (drift is mostly common to a whole process, so every cell
of a process estimates the same spread), is the between-process standard deviation, in log space. Because the cells
of a process share its offset, K processes on a side carry K - 1 degrees of freedom, not K - 1 per cell.

A cell is then judged on the mean log process median of each side: a two-sample t statistic with that pooled
standard deviation (Student's t with the pooled degrees of freedom, as the within-group mean square of a one-way
ANOVA; NIST/SEMATECH e-Handbook 7.3.1 and 7.4.3). Each side's process medians already carry the within-process
noise of a median of R rounds, so this one spread covers both. The **minimum detectable regression** is the
smallest true change that is caught with probability ``POWER``: the usual relation
``delta = (t_{1-alpha} + t_{power}) * SE`` (Cohen 1988, ch. 2), and never less than the threshold itself plus
``t_{power} * SE``, because the observed change must also clear the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

POWER = 0.95
# Used only where neither side pooled two processes: what gpu-selfcheck measured (CPU 3.4%) rounded up, and a
# conservative figure for a dedicated GPU. Shown in the verdict as assumed, never as measured.
ASSUMED = {"cpu": 0.04, "cuda": 0.02}


@dataclass(frozen=True)
class Drift:
    """Between-process standard deviation of log process medians, with its degrees of freedom (0: assumed)."""

    sigma: float
    dof: int

    @property
    def measured(self) -> bool:
        return self.dof > 0

    def describe(self) -> str:
        if not self.measured:
            return f"{self.sigma:.1%} between-process drift ASSUMED (no side pooled 2 processes)"
        return f"{self.sigma:.1%} between-process drift, measured ({self.dof} degrees of freedom)"

    def quantile(self, p: float) -> float:
        """The t quantile for these degrees of freedom; the normal one where the drift is assumed."""
        return float(stats.t.ppf(p, self.dof) if self.measured else stats.norm.ppf(p))


def squares(medians: Sequence[float]) -> tuple[float, int]:
    """Sum of squared deviations of log medians from their mean, and its degrees of freedom (n - 1)."""
    if len(medians) < 2:
        return 0.0, 0
    logs = np.log(np.asarray(medians, dtype=float))
    return float(((logs - logs.mean()) ** 2).sum()), len(logs) - 1


def pooled_drift(sides: Iterable[Iterable[Sequence[float]]], assumed: float) -> Drift:
    """The pooled between-process spread: ``sides`` holds, per side (baseline, this run), every cell's process
    medians. The spread pools every cell; its degrees of freedom do not: the cells of one process share its offset,
    so K processes give K - 1 of them per side whatever the number of cells (counting cells would understate the
    t quantile and inflate false alarms)."""
    total, cell_dof, dof = 0.0, 0, 0
    for cells in sides:
        widest = 0
        for medians in cells:
            ss, df = squares(medians)
            total, cell_dof, widest = total + ss, cell_dof + df, max(widest, len(medians))
        dof += max(widest - 1, 0)
    return Drift(math.sqrt(total / cell_dof), dof) if dof else Drift(assumed, 0)


@dataclass(frozen=True)
class ProcessTest:
    change: float  # exp(mean log now - mean log base) - 1
    p_value: float  # one-sided, in the direction of the change
    mdr: float  # minimum detectable change in the metric's worse direction (a positive fraction)


def median_variance(samples: Sequence[float]) -> float:
    """Variance of the log median of these rounds: (1.2533 sd / sqrt(n))^2, the large-sample relation for a normal
    sample (Kendall & Stuart, vol. 1, 10.10). Used where the drift is assumed: measured process medians carry it."""
    logs = np.log(np.asarray(samples, dtype=float))
    return float((1.2533 * logs.std(ddof=1)) ** 2 / len(logs)) if len(logs) > 1 else 0.0


def process_test(
    base: Sequence[float],
    now: Sequence[float],
    drift: Drift,
    alpha: float,
    threshold: float,
    worse_up: bool,
    direction: float = 0.0,
    within_var: float = 0.0,
) -> ProcessTest:
    """Mean log process median, now against base, given the pooled drift. ``worse_up``: a rise is a regression
    (latency), else a drop is (throughput). ``direction``: the sign of the change the verdict is about (the pooled
    medians'), so both tests ask the same one-sided question; 0 takes the process means' own. ``within_var``: the
    medians' own variance, added where the drift is assumed rather than measured."""
    d = float(np.mean(np.log(now)) - np.mean(np.log(base)))
    se = math.sqrt(drift.sigma**2 * (1 / len(base) + 1 / len(now)) + within_var)
    towards = math.copysign(1.0, direction or d)
    if se == 0:  # identical medians on both sides of every process (a coarse timer): only a move is a move
        p = 0.0 if towards * d > 0 else 1.0
    else:
        p = float(stats.t.sf(towards * d / se, drift.dof) if drift.measured else stats.norm.sf(towards * d / se))
    sign = 1.0 if worse_up else -1.0
    floor = 1 + sign * threshold  # a drop of 100% or more can never be seen: only a total loss would count
    beyond_threshold = abs(math.log(floor)) if floor > 0 else math.inf
    needed = max(beyond_threshold, drift.quantile(1 - alpha) * se) + drift.quantile(POWER) * se
    return ProcessTest(math.exp(d) - 1, p, abs(math.exp(sign * needed) - 1))
