"""One metric of one cell, head against base, over K pairs of processes.

Each pair gives one figure: the log ratio of the head process's median to the base process's. Pairing removes what
the two processes of a pair share (the machine, the hour, the driver); what is left is the per-process noise, which
the spread of the K log ratios measures. A timed metric is a **regression** when all three hold, as the
stored-baseline gate judges:
- the change (the geometric mean of the pair ratios, less 1) is beyond the threshold;
- the pairs moved: one-sided paired t-test on the log ratios, p < alpha (K - 1 degrees of freedom);
- the rounds moved: one-sided Mann-Whitney U on every round of both sides, p < alpha.
Value metrics (peak VRAM, energy) have one figure per process: the change of the pairs' median figure, judged on
the threshold alone. The **minimum detectable regression** is the true change that this K and this spread catch 95%
of the time: significant and estimated beyond the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from ..stats import mann_whitney_less
from ..trackers.metrics import metric

Verdict = Literal["regression", "improvement", "unchanged"]
POWER = 0.95


@dataclass(frozen=True)
class PairedComparison:
    cell: str
    metric: str
    base: float  # the median of the base processes' medians (the single figure for value metrics)
    head: float
    ratios: tuple[float, ...]  # head / base, one per pair
    change: float  # geometric mean ratio - 1
    ci: tuple[float, float] | None  # 95% t interval of the change; None with fewer than 2 pairs or a value metric
    p_value: float | None  # pairs: one-sided, in the direction of the change
    rounds_p: float | None  # rounds: one-sided Mann-Whitney U
    threshold: float
    mdr: float | None  # minimum detectable regression (fraction, in the metric's worse direction)
    verdict: Verdict

    @property
    def worse(self) -> bool:
        return metric(self.metric).worse(self.change)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> PairedComparison:
        ci = tuple(data["ci"]) if data.get("ci") else None
        return PairedComparison(**{**data, "ratios": tuple(data["ratios"]), "ci": ci})


@dataclass(frozen=True)
class PairedTest:
    mean: float  # of the log ratios
    sd: float
    p_up: float  # one-sided p for "head > base"
    p_down: float
    half_width: float  # of the 95% interval of the mean log ratio


def paired_t(logs: Sequence[float]) -> PairedTest | None:
    """The one-sample t-test of the log ratios against 0; None with fewer than 2 pairs (no spread to judge by)."""
    a = np.asarray(logs, dtype=float)
    k = a.size
    if k < 2:
        return None
    mean, sd = float(a.mean()), float(a.std(ddof=1))
    if sd == 0.0:  # identical ratios (a virtual clock): the sign alone decides
        return PairedTest(mean, 0.0, 0.0 if mean > 0 else 1.0, 0.0 if mean < 0 else 1.0, 0.0)
    t = mean / (sd / math.sqrt(k))
    return PairedTest(
        mean,
        sd,
        float(sps.t.sf(t, k - 1)),
        float(sps.t.cdf(t, k - 1)),
        float(sps.t.ppf(0.975, k - 1) * sd / math.sqrt(k)),
    )


def min_detectable(
    sd: float, pairs: int, alpha: float, threshold: float, higher_is_better: bool, power: float = POWER
) -> float | None:
    """The smallest true change (fraction, in the metric's worse direction) found with probability ``power``: the
    paired test significant at ``alpha`` and the estimate beyond ``threshold`` (normal theory, t quantiles with
    K - 1 degrees of freedom). On a log scale a drop and a rise are symmetric; the threshold is not."""
    if pairs < 2:
        return None
    se = sd / math.sqrt(pairs)
    t_power = float(sps.t.ppf(power, pairs - 1))
    significant = (float(sps.t.ppf(1 - alpha, pairs - 1)) + t_power) * se
    log_threshold = -math.log1p(-threshold) if higher_is_better and threshold < 1 else math.log1p(threshold)
    shift = max(significant, log_threshold + t_power * se)
    return -math.expm1(-shift) if higher_is_better else math.expm1(shift)


def _verdict(name: str, change: float, threshold: float, significant: bool) -> Verdict:
    if abs(change) <= threshold or not significant:
        return "unchanged"
    return "regression" if metric(name).worse(change) else "improvement"


def compare_pairs(
    cell: str,
    name: str,
    base: Sequence[Sequence[float]],
    head: Sequence[Sequence[float]],
    threshold: float,
    alpha: float,
) -> PairedComparison:
    """A timed metric: ``base[i]`` and ``head[i]`` are the rounds of pair i's two processes."""
    if len(base) != len(head) or not base:
        raise ValueError("one base and one head process per pair")
    base_medians = [float(np.median(r)) for r in base]
    head_medians = [float(np.median(r)) for r in head]
    logs = [math.log(h / b) for h, b in zip(head_medians, base_medians, strict=True)]
    test = paired_t(logs)
    change = math.expm1(float(np.mean(logs)))
    base_rounds = [x for r in base for x in r]
    head_rounds = [x for r in head for x in r]
    if change < 0:
        rounds_p = mann_whitney_less(head_rounds, base_rounds)
    else:
        rounds_p = mann_whitney_less(base_rounds, head_rounds)
    if test is None:
        p, ci, mdr = None, None, None
    else:
        p = test.p_down if change < 0 else test.p_up
        ci = (math.expm1(test.mean - test.half_width), math.expm1(test.mean + test.half_width))
        mdr = min_detectable(test.sd, len(logs), alpha, threshold, metric(name).higher_is_better)
    significant = p is not None and p < alpha and rounds_p < alpha
    return PairedComparison(
        cell,
        name,
        float(np.median(base_medians)),
        float(np.median(head_medians)),
        tuple(h / b for h, b in zip(head_medians, base_medians, strict=True)),
        change,
        ci,
        p,
        rounds_p,
        threshold,
        mdr,
        _verdict(name, change, threshold, significant),
    )


def compare_values(
    cell: str, name: str, base: Sequence[float], head: Sequence[float], threshold: float
) -> PairedComparison:
    """A value metric (one figure per process): the threshold alone decides, as in the stored-baseline gate."""
    b, h = float(np.median(base)), float(np.median(head))
    change = h / b - 1
    ratios = tuple(y / x for x, y in zip(base, head, strict=True))
    verdict = _verdict(name, change, threshold, True)
    return PairedComparison(cell, name, b, h, ratios, change, None, None, None, threshold, threshold, verdict)
