"""Run-to-run spread: a few matrix cells measured in several fresh pytest processes.

One process's rounds share its state (allocator layout, clocks, what else the machine was doing), so the spread
between processes is what a baseline recorded today and a run tomorrow differ by when nothing changed. Each child
runs the real matrix benchmark with this run's model, device and workload options, and its report is read back.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..errors import RerankPerfError
from ..options import forwarded
from ..report.folder import load_report
from ..runtime import get_options, session_device
from ..store.schema import cell_key
from .matrix_result import MatrixResult
from .selfcheck import Check

TIMEOUT_S = 600.0
_FORWARDED = (
    "rerank_model",
    "rerank_backend",
    "rerank_device",
    "rerank_dtype",
    "rerank_max_length",
    "rerank_pair_tokens",
    "rerank_seed",
    "rerank_cpu_threads",
    "rerank_rounds",
)


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
        """Pooled relative standard deviation of the process medians around each cell's mean (n - 1 per cell)."""
        squares, dof = 0.0, 0
        for values in self.medians.values():
            if len(values) < 2:
                continue
            mean = sum(values) / len(values)
            squares += sum((v / mean - 1) ** 2 for v in values)
            dof += len(values) - 1
        return math.sqrt(squares / dof) if dof else None


def plugin_args(args: Sequence[str]) -> list[str]:
    """The ``-p NAME`` arguments of a command line (a fake GPU, say): the children load the same plugins."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "-p" and i + 1 < len(args):
            out += ["-p", args[i + 1]]
        elif arg.startswith("-p") and len(arg) > 2:
            out.append(arg)
    return out


def child_command(config: pytest.Config, matrix_test: Path, report_dir: Path) -> list[str]:
    """A pytest command that measures a few cells of this run's matrix, with its model, device and workload."""
    num_pairs, batch_sizes = get_options(config).matrix(session_device(config))
    return [
        sys.executable,
        "-m",
        "pytest",
        str(matrix_test),
        "-q",
        "-p",
        "no:cacheprovider",
        *plugin_args(config.invocation_params.args),
        *forwarded(config, _FORWARDED),
        f"--rerank-num-pairs={num_pairs[len(num_pairs) // 2]}",
        f"--rerank-batch-sizes={batch_sizes[0]},{batch_sizes[len(batch_sizes) // 2]}",
        "--rerank-gate=off",
        f"--rerank-report-dir={report_dir}",
    ]


def measure_spread(config: pytest.Config, matrix_test: Path, out_dir: Path) -> Spread:
    """``--rerank-spread-processes`` fresh processes, one after the other, each measuring the same few cells."""
    medians: dict[str, list[float]] = {}
    # a child is its own run, never an xdist worker of this one (it would pin itself to another GPU)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    for i in range(get_options(config).spread_processes):
        report_dir = out_dir / f"process-{i}"
        command = child_command(config, matrix_test, report_dir)
        done = subprocess.run(command, cwd=config.rootpath, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise RerankPerfError(f"spread process {i} failed (exit {done.returncode}): {' '.join(command)}\n{tail}")
        matrix = load_report(report_dir / "report.json").result(MatrixResult)
        for cell in matrix.cells if matrix else []:
            if cell["status"] == "ok":
                medians.setdefault(cell_key(cell["workload_id"], cell["batch_size"]), []).append(cell["pairs_per_s"])
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
