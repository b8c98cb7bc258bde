"""How often the gate fires (its statistical detection power): a stand-in model with known cost and noise,
slowed down by known amounts.

Each trial records a baseline and then gates a new run against it, through the same code as a real run
(``CallTracker`` -> ``MetricSummary`` per process -> pooled processes -> ``pooled_drift`` -> ``compare_samples``),
with the ``CostModel`` stand-in backend. Its call time is

    cost_per_pair * pairs * (1 + slowdown) * exp(run offset) * exp(round noise) * (outlier factor, sometimes)

with seeded draws: the **round noise** varies call to call; the **run offset** is drawn once per process and shared
by every cell of it, because a process on a shared machine is a little faster or slower than the next for its whole
life (memory placement, neighbours, clocks). The baseline pools ``baseline_runs`` processes and the gated run
``runs`` processes (``--rerank-processes``); the drift is estimated from the process medians of all ``cells``
cells, as the gate does, and one cell is judged. A virtual clock makes a trial take milliseconds, so thousands
of trials are cheap and the figures are exact for the stated noise; ``real_clock=True`` busy-waits the drawn time
instead, so the machine's own timer noise comes on top.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..backends.standin import CostModel, VirtualClock
from ..store.schema import MetricSummary
from ..trackers.latency import CallTracker
from .compare import compare_samples
from .drift import ASSUMED, pooled_drift
from .thresholds import GateSettings


@dataclass(frozen=True)
class NoiseModel:
    round_sigma: float = 0.05  # log-normal sigma of one call
    run_sigma: float = 0.02  # log-normal sigma of a whole process
    outlier_rate: float = 0.03  # share of calls hit by a stall
    outlier_max: float = 1.6  # a stalled call takes up to this factor longer


# Measured on this project's shared 2-core CPU runner, tiny twin, 1 torch thread (docs/gate.md, "Detection power").
SHARED_CPU = NoiseModel(round_sigma=0.05, run_sigma=0.02, outlier_rate=0.03, outlier_max=1.6)


class NoisyCost:
    """Seconds per call of the stand-in: a known cost per pair, times seeded call noise and a per-process offset."""

    def __init__(self, cost_per_pair_s: float, noise: NoiseModel, slowdown: float, seed: int) -> None:
        self.cost = cost_per_pair_s * (1 + slowdown)
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.run_factor = float(np.exp(self.rng.normal(0, noise.run_sigma)))

    def __call__(self, pairs: int, batch_size: int) -> float:
        factor = self.run_factor * float(np.exp(self.rng.normal(0, self.noise.round_sigma)))
        if self.rng.random() < self.noise.outlier_rate:
            factor *= float(self.rng.uniform(1.0, self.noise.outlier_max))
        return self.cost * pairs * factor


@dataclass(frozen=True)
class PowerSettings:
    noise: NoiseModel = SHARED_CPU
    num_pairs: int = 10  # the noise is relative: fewer pairs per call only make trials cheaper
    cost_per_pair_s: float = 2e-5
    baseline_runs: int = 3
    baseline_rounds: int = 30  # per baseline process
    runs: int = 1  # processes pooled into the gated run
    rounds: int = 10  # per gated process
    threshold: float = 0.05
    alpha: float = 0.01
    real_clock: bool = False
    cells: int = 12  # cells per process (the CPU matrix has 12): all of them estimate the drift


def _process(settings: PowerSettings, slowdown: float, seed: int, rounds: int) -> list[MetricSummary]:
    """One process: every cell measured under the same run offset; each cell's throughput summary."""
    clock = None if settings.real_clock else VirtualClock()
    model = CostModel(NoisyCost(settings.cost_per_pair_s, settings.noise, slowdown, seed), clock)
    pairs = [("q", "d")] * settings.num_pairs
    out = []
    for _ in range(settings.cells):
        tracker = CallTracker(lambda: model.predict(pairs, settings.num_pairs), "cpu", clock=clock or time.perf_counter)
        for _ in range(rounds):
            tracker()
        out.append(MetricSummary.of([settings.num_pairs / s for s in tracker.samples], "pairs/s", ci=False))
    return out


def _side(settings: PowerSettings, slowdown: float, seed: int, runs: int, rounds: int) -> list[MetricSummary]:
    """``runs`` processes pooled cell by cell, as ``--rerank-processes`` pools them."""
    cells = _process(settings, slowdown, seed, rounds)
    for k in range(1, runs):
        more = _process(settings, slowdown, seed + k, rounds)
        cells = [mine.pooled(other, ci=False) for mine, other in zip(cells, more, strict=True)]
    return cells


def trial(settings: PowerSettings, slowdown: float, seed: int) -> bool:
    """One baseline recording and one gated run; True when the gate declares a throughput regression."""
    base = _side(settings, 0.0, seed * 1000, settings.baseline_runs, settings.baseline_rounds)
    now = _side(settings, slowdown, seed * 1000 + 500, settings.runs, settings.rounds)
    drift = pooled_drift([[c.process_medians for c in side] for side in (base, now)], ASSUMED["cpu"])
    gate = GateSettings({"throughput": settings.threshold}, alpha=settings.alpha)
    return compare_samples("stand-in", "throughput", base[0], now[0], gate, drift, ci=False).verdict == "regression"


def firing_rate(settings: PowerSettings, slowdown: float, trials: int, seed: int = 0) -> float:
    return sum(trial(settings, slowdown, seed + i) for i in range(trials)) / trials


SLOWDOWNS = (0.0, 0.05, 0.10, 0.20)


def power_table(columns: dict[str, PowerSettings], trials: int, slowdowns: Sequence[float] = SLOWDOWNS) -> str:
    """Markdown: how often the gate fires, per injected slowdown (rows) and noise/threshold setting (columns)."""
    lines = ["| slowdown | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for slowdown in slowdowns:
        rates = [firing_rate(s, slowdown, trials) for s in columns.values()]
        lines.append(f"| {slowdown * 100:.0f}% | " + " | ".join(f"{r * 100:.1f}%" for r in rates) + " |")
    return "\n".join(lines)


DRIFT = replace(SHARED_CPU, run_sigma=0.04)  # the case: 4% process-to-process drift


def drift_columns(processes: Sequence[int] = (1, 2, 4, 6, 8, 10, 12), cells: int = 4) -> dict[str, PowerSettings]:
    """K processes on each side at 4% drift and a 5% threshold (``cells`` per process estimate the drift)."""
    return {f"K={k}": PowerSettings(noise=DRIFT, baseline_runs=k, runs=k, cells=cells) for k in processes}


def main() -> None:  # python -m pytest_rerank_perf.gate.detection_power [trials]
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pytest_rerank_perf.gate.detection_power",
        description="How often the regression gate fires, per injected slowdown (docs/gate.md, Detection power).",
    )
    parser.add_argument("trials", nargs="?", type=int, default=500, help="trials per table cell (default 500)")
    trials = parser.parse_args().trials
    print(f"{trials} trials per cell; 4% between-process drift, 5% threshold, alpha 0.01; K processes each side")
    print(power_table(drift_columns(), trials), flush=True)
    calls = replace(SHARED_CPU, run_sigma=0.0)
    other = {
        "no drift, K=1": PowerSettings(noise=calls),
        "no drift, K=1, real clock": PowerSettings(noise=calls, real_clock=True),
        "4% drift, 15% (CPU default), K=3": PowerSettings(noise=DRIFT, runs=3, threshold=0.15),
    }
    print(power_table(other, max(trials // 5, 50)))


if __name__ == "__main__":
    main()
