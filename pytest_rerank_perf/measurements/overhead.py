"""What the harness costs: its measured callable, with every tracker running, against a bare predict loop.

Calls are interleaved in pairs (bare, harness), alternating which goes first so drift cancels; the figure is the
median of the paired ratios. The harness side is exactly what is alive during a cell's rounds: the call tracker
around predict and every tracker of the runner, started, so hooks and samplers are counted on that side only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ..machine import device as dev
from ..trackers import track
from ..workloads.workload import Workload
from .matrix import CellRunner

PAIRS = 40  # interleaved (bare, harness) call pairs


@dataclass
class OverheadResult:
    key: ClassVar[str] = "overhead"
    overhead: float  # median harness / bare - 1
    iqr: tuple[float, float]
    pairs: int
    num_pairs: int
    batch_size: int
    bare_median_s: float

    def report_fields(self) -> dict[str, Any]:
        return {"harness_overhead": {**asdict(self), "iqr": list(self.iqr)}}

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"harness_overhead": None}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> OverheadResult | None:
        raw = data.get("harness_overhead")
        return None if not raw else cls(**{**raw, "iqr": tuple(raw["iqr"])})

    def merge(self, other: OverheadResult) -> OverheadResult:
        return self  # one measurement per run suffices; under xdist the first worker's stands

    def summary_lines(self) -> list[str]:
        return [
            f"harness overhead vs a bare predict loop: {self.overhead * 100:+.2f}% "
            f"(median of {self.pairs} interleaved call pairs, "
            f"IQR {self.iqr[0] * 100:+.2f}%..{self.iqr[1] * 100:+.2f}%, n={self.num_pairs} bs={self.batch_size})"
        ]

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        return ["", "## Harness overhead", "", *self.summary_lines()]


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_overhead(runner: CellRunner, workload: Workload, batch_size: int, pairs: int = PAIRS) -> OverheadResult:
    model, sync = runner.model, dev.synchronizer(runner.device)
    items = list(workload.pairs)
    harness = runner.call_tracker(workload, batch_size)

    def bare() -> None:
        model.predict(items, batch_size)
        sync()

    for _ in range(3):
        bare()
    ratios, bare_times = [], []
    for i in range(pairs):
        bare_first = i % 2 == 0  # alternate to cancel drift
        t_bare = _timed(bare) if bare_first else 0.0
        with track([harness, *runner.trackers]):
            t_harness = _timed(harness)
        if not bare_first:
            t_bare = _timed(bare)
        ratios.append(t_harness / t_bare)
        bare_times.append(t_bare)
    q1, q3 = np.percentile(ratios, [25, 75]) - 1
    return OverheadResult(
        float(np.median(ratios)) - 1,
        (float(q1), float(q3)),
        pairs,
        len(workload),
        batch_size,
        float(np.median(bare_times)),
    )
