"""Run-to-run spread for the self-check: a few matrix cells measured in several fresh pytest processes
(``processes.py``), so the between-process drift is seen before a gate trusts its threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..gate.drift import pooled_drift
from ..measurements.matrix_result import MatrixResult
from ..measurements.selfcheck import Check
from ..store.schema import key_of
from .processes import child_command, run_child
from .runtime import get_options, session_device


@dataclass(frozen=True)
class Spread:
    medians: Mapping[str, Sequence[float]]  # cell -> median pairs/s of each process

    @property
    def processes(self) -> int:
        return min((len(v) for v in self.medians.values()), default=0)

    def cell_ranges(self) -> dict[str, float]:
        """(max - min) / mean of each cell's process medians."""
        return {k: (max(v) - min(v)) / (sum(v) / len(v)) for k, v in self.medians.items() if len(v) > 1}

    def between_cv(self) -> float | None:
        """The pooled between-process spread of the process medians, as the gate estimates it (``gate.drift``)."""
        drift = pooled_drift([list(self.medians.values())], assumed=0.0)
        return drift.sigma if drift.measured else None


def measure_spread(config: pytest.Config, matrix_test: Path, out_dir: Path) -> Spread:
    """``--rerank-spread-processes`` fresh processes, one after the other, each measuring the same few cells."""
    opts = get_options(config)
    num_pairs, batch_sizes = opts.matrix(session_device(config))
    cells = ([num_pairs[len(num_pairs) // 2]], [batch_sizes[0], batch_sizes[len(batch_sizes) // 2]])
    count = len(set(cells[1])) * len(opts.variants)
    medians: dict[str, list[float]] = {}
    for i in range(opts.spread_processes):
        report_dir = out_dir / f"process-{i}"
        command = child_command(config, [str(matrix_test)], report_dir, cells)
        label = f"spread process {i + 1} of {opts.spread_processes}"
        matrix = run_child(config, command, report_dir, label, count).result(MatrixResult)
        for cell in matrix.cells if matrix else []:
            if cell["status"] == "ok":
                medians.setdefault(key_of(cell), []).append(cell["pairs_per_s"])
    return Spread(medians)


def spread_check(spread: Spread, threshold: float) -> Check:
    """Warn where the between-process spread is large next to the gate's threshold: it would fire on noise."""
    name = f"run-to-run spread over {spread.processes} processes"
    cv = spread.between_cv()
    if cv is None:
        return Check(name, "unknown", "warn", "fewer than two processes measured a cell")
    widest = max(spread.cell_ranges().items(), key=lambda kv: kv[1])
    measured = f"between-process CV {cv:.1%}; widest range {widest[1]:.1%} ({widest[0]})"
    if 2 * cv > threshold:
        note = f"the {threshold:.0%} throughput threshold is within 2x this noise: raise it or pool more processes"
        return Check(name, measured, "warn", note)
    return Check(name, measured, "pass", f"well inside the {threshold:.0%} throughput threshold")
