"""The gate's statistics and verdicts, and its detection power on the stand-in model."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from pytest_rerank_perf.backends.standin import CostModel, VirtualClock
from pytest_rerank_perf.errors import UsageError
from pytest_rerank_perf.gate.compare import compare_samples, compare_value
from pytest_rerank_perf.gate.detection_power import SHARED_CPU, NoisyCost, PowerSettings, firing_rate
from pytest_rerank_perf.gate.thresholds import GateSettings, parse_threshold_rules
from pytest_rerank_perf.stats import bootstrap_ratio_ci, mann_whitney_less

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


def test_large_sample_normal_approximation_is_close_to_exact() -> None:
    rng = np.random.default_rng(1)
    x, y = list(rng.normal(0, 1, 40)), list(rng.normal(0.5, 1, 60))
    exact = mann_whitney_less(x, y)  # 2400 <= exact limit
    approx = mann_whitney_less([*x, x[0]], y)  # a tie forces the normal approximation
    assert exact < 0.05
    assert approx == pytest.approx(exact, rel=0.35)


def test_bootstrap_ci_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(3)
    base, now = rng.normal(100, 3, 30), rng.normal(90, 3, 30)
    lo, hi = bootstrap_ratio_ci(now, base)
    assert lo < 0.9 < hi
    assert hi < 1.0


def test_regression_needs_significance_and_threshold() -> None:
    rng = np.random.default_rng(0)
    base = list(500 * np.exp(rng.normal(0, 0.02, 30)))
    slower = [v * 0.85 for v in base[:10]]
    assert compare_samples("c", "throughput", base, slower, GPU).verdict == "regression"
    # significant but within the 5% threshold
    small = [v * 0.97 for v in base[:10]]
    result = compare_samples("c", "throughput", base, small, GPU)
    assert result.p_value is not None
    assert result.p_value < 0.01
    assert result.verdict == "unchanged"
    # beyond the threshold but not significant (3 rounds of wild noise)
    wild = [base[0] * 0.6, base[1] * 1.3, base[2] * 0.9]
    assert compare_samples("c", "throughput", base, wild, GPU).verdict == "unchanged"
    faster = [v * 1.2 for v in base[:10]]
    assert compare_samples("c", "throughput", base, faster, GPU).verdict == "improvement"
    # latency: higher is worse
    assert compare_samples("c", "latency", base, faster, GPU).verdict == "regression"


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
    """Shared-CPU call noise (5% log-normal, 3% stalls), baseline of 3 x 30 rounds, gated run of 10 rounds, 5%."""
    settings = PowerSettings(noise=replace(SHARED_CPU, run_sigma=0.0))
    assert firing_rate(settings, 0.0, trials=1000) <= 0.01
    assert firing_rate(settings, 0.10, trials=1000) >= 0.95
    assert firing_rate(settings, 0.30, trials=200) == 1.0


def test_cpu_default_threshold_keeps_false_alarms_rare_under_run_drift() -> None:
    """With the measured 4% process-to-process drift, 15% (the CPU default) stays quiet and still catches 30%."""
    settings = PowerSettings(noise=replace(SHARED_CPU, run_sigma=0.04), threshold=0.15)
    assert firing_rate(settings, 0.0, trials=1000) <= 0.01
    assert firing_rate(settings, 0.30, trials=1000) >= 0.95


def test_a_gate_without_significance_would_fire_on_noise() -> None:
    """The test can fail: with the threshold alone (alpha 1.0) and 3 rounds, identical runs fire far too often."""
    settings = PowerSettings(noise=replace(SHARED_CPU, run_sigma=0.0), rounds=3, alpha=1.0, threshold=0.03)
    assert firing_rate(settings, 0.0, trials=500) > 0.05
