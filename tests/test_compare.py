"""The gate's statistics and verdicts, its detection power on the stand-in model, and the baseline file lock."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from filelock import FileLock, Timeout
from scipy import stats as scipy_stats

from pytest_rerank_perf.backends.standin import CostModel, VirtualClock
from pytest_rerank_perf.errors import UsageError
from pytest_rerank_perf.fsutil import locked
from pytest_rerank_perf.gate.compare import compare_samples, compare_value
from pytest_rerank_perf.gate.detection_power import (
    DRIFT,
    SHARED_CPU,
    NoisyCost,
    PowerSettings,
    drift_columns,
    firing_rate,
)
from pytest_rerank_perf.gate.drift import Drift, pooled_drift, process_test
from pytest_rerank_perf.gate.thresholds import GateSettings, parse_threshold_rules
from pytest_rerank_perf.stats import EXACT_LIMIT, bootstrap_median_ci, bootstrap_ratio_ci, mann_whitney_less
from pytest_rerank_perf.store.schema import MetricSummary

GPU = GateSettings.for_device("cuda")


def _brute_force_p(x: list[float], y: list[float]) -> float:
    """P(U <= u_observed) over every split of the pooled values: the exact null distribution."""
    pooled, m = x + y, len(x)
    observed = sum(a > b for a in x for b in y)
    count = total = 0
    for idx in itertools.combinations(range(len(pooled)), m):
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
        count += sum(a > b for a in xs for b in ys) <= observed
        total += 1
    return count / total


@pytest.mark.parametrize("seed", range(4))
def test_exact_mann_whitney_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = list(rng.normal(0, 1, 5)), list(rng.normal(0.8, 1, 6))
    assert mann_whitney_less(x, y) == pytest.approx(_brute_force_p(x, y), abs=1e-12)


@pytest.mark.parametrize(
    ("m", "n", "tied", "method"),
    [(5, 6, False, "exact"), (50, 50, False, "exact"), (50, 51, False, "asymptotic"), (5, 6, True, "asymptotic")],
)
def test_exact_only_for_untied_samples_within_the_limit(
    monkeypatch: pytest.MonkeyPatch, m: int, n: int, tied: bool, method: str
) -> None:
    assert EXACT_LIMIT == 2500  # the 50 x 50 / 50 x 51 cases sit on either side of it
    seen: list[dict[str, Any]] = []
    real = scipy_stats.mannwhitneyu

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy_stats, "mannwhitneyu", spy)
    rng = np.random.default_rng(0)
    x, y = list(rng.normal(0, 1, m)), list(rng.normal(0.5, 1, n))
    if tied:
        y[0] = x[0]
    mann_whitney_less(x, y)
    assert [(k["method"], k["alternative"], k["use_continuity"]) for k in seen] == [(method, "less", True)]


def test_large_sample_normal_approximation_is_close_to_exact() -> None:
    rng = np.random.default_rng(1)
    x, y = list(rng.normal(0, 1, 40)), list(rng.normal(0.5, 1, 60))
    exact = mann_whitney_less(x, y)  # 2400 <= exact limit
    approx = mann_whitney_less([*x, x[0]], y)  # a tie forces the normal approximation
    assert exact < 0.05
    assert approx == pytest.approx(exact, rel=0.35)
    assert mann_whitney_less(y, x) > 0.95  # one-sided: the other direction is not significant


def test_identical_samples_are_never_significant() -> None:
    assert mann_whitney_less([1.0] * 5, [1.0] * 8) >= 0.5


def test_bootstrap_ci_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(3)
    base, now = rng.normal(100, 3, 30), rng.normal(90, 3, 30)
    lo, hi = bootstrap_ratio_ci(now, base)
    assert lo < 0.9 < hi
    assert hi < 1.0


def test_bootstrap_is_deterministic_and_handles_degenerate_samples() -> None:
    rng = np.random.default_rng(4)
    base, now = list(rng.normal(100, 3, 30)), list(rng.normal(90, 3, 10))
    assert bootstrap_ratio_ci(now, base) == bootstrap_ratio_ci(now, base)  # seeded: same samples, same interval
    assert bootstrap_median_ci(base) == bootstrap_median_ci(base)
    lo, hi = bootstrap_median_ci(base)
    assert lo < float(np.median(base)) < hi
    assert bootstrap_ratio_ci(now, base, seed=1) != bootstrap_ratio_ci(now, base)
    # one round, or a timer too coarse to tell rounds apart: a point interval, not an error or NaN
    assert bootstrap_median_ci([2.5]) == (2.5, 2.5)
    assert bootstrap_median_ci([2.5] * 6) == (2.5, 2.5)
    assert bootstrap_ratio_ci([3.0], [2.0, 2.0]) == (1.5, 1.5)


def _one(samples: Any, medians: Any = None) -> MetricSummary:
    return MetricSummary.of(list(samples), "pairs/s", medians, ci=False)


def _judge(base: Any, now: Any, name: str = "throughput", drift: Drift | None = None) -> Any:
    drift = drift or pooled_drift([], GPU.assumed_drift)
    return compare_samples("c", name, _one(base), _one(now), GPU, drift)


def test_regression_needs_significance_and_threshold() -> None:
    rng = np.random.default_rng(0)
    base = list(500 * np.exp(rng.normal(0, 0.02, 30)))
    assert _judge(base, [v * 0.85 for v in base[:10]]).verdict == "regression"
    # significant but within the 5% threshold
    result = _judge(base, [v * 0.97 for v in base[:10]])
    assert result.p_value is not None
    assert result.p_value < 0.01
    assert result.verdict == "unchanged"
    # beyond the threshold but not significant (3 rounds of wild noise)
    assert _judge(base, [base[0] * 0.6, base[1] * 1.3, base[2] * 0.9]).verdict == "unchanged"
    faster = [v * 1.2 for v in base[:10]]
    assert _judge(base, faster).verdict == "improvement"
    # latency: higher is worse
    assert _judge(base, faster, "latency").verdict == "regression"


def test_a_change_within_the_measured_drift_is_not_a_regression() -> None:
    """Rounds that moved 8% (far beyond their own noise and the 5% threshold) are not a regression when the
    processes of the baseline drift by 6% from one another: the process test sees it, the rank test cannot."""
    rng = np.random.default_rng(1)
    rounds = list(500 * np.exp(rng.normal(0, 0.01, 30)))
    drift = pooled_drift([[[470.0, 500.0, 530.0], [940.0, 1000.0, 1060.0]]], GPU.assumed_drift)
    assert drift.measured
    assert drift.sigma == pytest.approx(0.06, rel=0.05)
    base = _one(rounds, [470.0, 500.0, 530.0])
    now = _one([v * 0.92 for v in rounds[:10]], [460.0])
    result = compare_samples("c", "throughput", base, now, GPU, drift)
    assert result.p_value is not None
    assert result.p_value < 1e-4  # the rounds alone would call it
    assert result.drift_p is not None
    assert result.drift_p > 0.01
    assert result.verdict == "unchanged"
    assert result.mdr is not None
    assert result.mdr > 0.15  # and the table says what this machine can see
    quiet = pooled_drift([[[499.0, 500.0, 501.0]]], GPU.assumed_drift)
    assert compare_samples("c", "throughput", base, now, GPU, quiet).verdict == "regression"


def test_the_process_test_asks_the_verdict_s_question_and_survives_identical_medians() -> None:
    drift = Drift(0.01, 10)
    # the process means dropped while the pooled medians rose: "did it rise?" is not supported by the processes
    against = process_test([100.0] * 6, [97.0] * 6, drift, 0.01, 0.05, worse_up=False, direction=+1.0)
    assert against.p_value > 0.5
    # every process median identical on both sides (a coarse timer): no division by zero, no significance
    flat = process_test([100.0] * 3, [100.0] * 3, Drift(0.0, 4), 0.01, 0.05, worse_up=False)
    assert flat.p_value == 1.0


def test_minimum_detectable_regression_shrinks_with_pooled_processes() -> None:
    def mdr(k: int) -> float:  # k processes a side, 4% drift known to 2(k - 1) degrees of freedom
        return process_test([1.0] * k, [1.0] * k, Drift(0.04, 2 * (k - 1)), 0.01, 0.05, worse_up=False).mdr

    assert mdr(2) > mdr(6) > mdr(12) > 0.05
    assert mdr(12) < 0.10  # 12 processes a side see a 10% slowdown at 4% drift
    # never below the threshold plus the power margin
    assert process_test([1.0] * 50, [1.0] * 50, Drift(0.04, 98), 0.01, 0.05, worse_up=True).mdr > 0.05


def test_vram_is_judged_on_the_threshold() -> None:
    assert compare_value("c", "vram", 1000, 1060, GPU).verdict == "regression"
    assert compare_value("c", "vram", 1000, 1040, GPU).verdict == "unchanged"
    assert compare_value("c", "vram", 1000, 900, GPU).verdict == "improvement"


def test_threshold_rules_last_match_wins() -> None:
    rules = parse_threshold_rules(["throughput=8%", "# comment", "*-n10/bs1:throughput=0.2", "vram = 2%"])
    settings = GateSettings.for_device("cuda", rules)
    assert settings.threshold("w-n10/bs1", "throughput") == pytest.approx(0.2)
    assert settings.threshold("w-n50/bs1", "throughput") == pytest.approx(0.08)
    assert settings.threshold("w-n50/bs1", "vram") == pytest.approx(0.02)
    assert settings.threshold("w-n50/bs1", "latency") == pytest.approx(0.05)
    assert GateSettings.for_device("cpu").threshold("x", "throughput") == pytest.approx(0.15)
    with pytest.raises(UsageError, match="unknown metric"):
        parse_threshold_rules(["*:memory=5%"])


def test_stand_in_costs_what_it_says() -> None:
    clock = VirtualClock()
    quiet = replace(SHARED_CPU, round_sigma=0.0, run_sigma=0.0, outlier_rate=0.0)
    model = CostModel(NoisyCost(1e-3, quiet, slowdown=0.1, seed=0), clock)
    model.predict([("q", "d")] * 50, 50)
    assert clock.now == pytest.approx(50 * 1e-3 * 1.1)


def test_gate_power_meets_the_targets_on_per_call_noise() -> None:
    """Shared-CPU call noise (5% log-normal, 3% stalls), no drift: a 10-process baseline (as record-baseline pools)
    against one gated process of 10 rounds, 5% threshold: 10% caught, identical runs quiet."""
    settings = PowerSettings(noise=replace(SHARED_CPU, run_sigma=0.0), cells=4, baseline_runs=10)
    assert firing_rate(settings, 0.0, trials=200) <= 0.01
    assert firing_rate(settings, 0.10, trials=200) >= 0.95


def test_pooled_processes_catch_a_10_percent_slowdown_under_4_percent_drift() -> None:
    """The detection table of docs/gate.md: K = 10 processes a side catch 10% >= 95% of the time with <= 1% false
    alarms at 4% drift (100 trials here, so the bounds allow for sampling), where one gated process seldom does."""
    ten = drift_columns((10,))["K=10"]
    assert firing_rate(ten, 0.0, trials=100) <= 0.02
    assert firing_rate(ten, 0.10, trials=100) >= 0.95
    assert firing_rate(replace(ten, runs=1, baseline_runs=3), 0.10, trials=100) < 0.8


def test_drift_no_longer_fires_the_gate_on_identical_code() -> None:
    """4% drift, one gated process, 5% threshold: the rounds differ significantly run to run, the processes do
    not; the old rank-test-only gate fired here on about one run in five."""
    settings = PowerSettings(noise=DRIFT, cells=4)
    assert firing_rate(settings, 0.0, trials=300) <= 0.01


def test_a_gate_without_significance_would_fire_on_noise() -> None:
    """The test can fail: with the threshold alone (alpha 1.0) and 3 rounds, identical runs fire far too often."""
    settings = PowerSettings(noise=replace(SHARED_CPU, run_sigma=0.0), rounds=3, alpha=0.99, threshold=0.03, cells=4)
    assert firing_rate(settings, 0.0, trials=300) > 0.05


def test_locked_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "profile.json"
    lock_file = tmp_path / "sub" / ".profile.json.lock"

    def hold_and_fail() -> None:
        with locked(path):
            assert lock_file.exists()
            with pytest.raises(Timeout), FileLock(lock_file, timeout=0):
                pass
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        hold_and_fail()
    with FileLock(lock_file, timeout=0):  # released on exit, an exception's too
        pass
