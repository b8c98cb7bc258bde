"""Fresh pytest processes that measure this run's matrix: ``--rerank-processes K`` pools K-1 of them into this run's
cells, and the self-check's spread compares a few of their cells.

One process's rounds share its state (allocator layout, clocks, what else the machine was doing), so only fresh
processes show the drift between a baseline recorded today and a run tomorrow. Each child runs the real matrix
benchmark with this run's model, device, workload and rounds options; its report is read back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from ..errors import RerankPerfError
from ..progress import duration, say
from ..report.folder import load_report
from ..report.run_report import RunReport
from .interrupts import Interrupted, held
from .options import forwarded
from .partial import PartialLog, count_lines
from .runtime import get_options, session_device

TIMEOUT_S = 3600.0
GRACE_S = 5.0  # after SIGTERM, before SIGKILL: enough for the child to stop its tests, not to write its report
HEARTBEAT_S = 20.0  # nothing runs silently for longer
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
    "rerank_inject_slowdown",
    "rerank_variants",
)


def matrix_items(items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """The collected tests that measure a matrix cell: what a fresh process (pooled, or an A/B side) re-runs."""
    return [item for item in items if "rerank_cell" in getattr(item, "fixturenames", ())]


def test_files(items: Sequence[pytest.Item]) -> list[str]:
    """The files (by path from the rootdir) that hold ``items``: what a child process is given to run."""
    return sorted({item.nodeid.split("::")[0] for item in items})


def plugin_args(args: Sequence[str]) -> list[str]:
    """The ``-p NAME`` arguments of a command line (a fake GPU, say): the children load the same plugins."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "-p" and i + 1 < len(args):
            out += ["-p", args[i + 1]]
        elif arg.startswith("-p") and len(arg) > 2:
            out.append(arg)
    return out


def child_command(
    config: pytest.Config, tests: Sequence[str], report_dir: Path, matrix: tuple[Sequence[int], Sequence[int]]
) -> list[str]:
    """A pytest command measuring ``matrix`` (num_pairs, batch sizes) with this run's model, device and workload.
    A recording's child records too, into a scratch store beside its report, so it takes a recording's rounds."""
    opts = get_options(config)
    num_pairs, batch_sizes = matrix
    recording = ["--rerank-save-baseline", f"--rerank-baseline-dir={report_dir / 'baselines'}"]
    # a data file by its resolved path (the child runs in the rootdir); a requests file has its own num_pairs
    data = [f"--rerank-workload={opts.data.path.resolve()}"] if opts.data else []
    seeded = ("rerank_pair_tokens", "rerank_seed")  # the seeded workload's options: not with a data file
    names = tuple(n for n in _FORWARDED if not (opts.data and n in seeded))
    pairs = (
        [] if opts.data and opts.data.shape == "requests" else [f"--rerank-num-pairs={','.join(map(str, num_pairs))}"]
    )
    return [
        sys.executable,
        "-m",
        "pytest",
        *tests,
        "-q",
        "-p",
        "no:cacheprovider",
        *plugin_args(config.invocation_params.args),
        *forwarded(config, names),
        *data,
        *pairs,
        f"--rerank-batch-sizes={','.join(map(str, batch_sizes))}",
        "--rerank-gate=off",
        "--rerank-processes=1",
        f"--rerank-report-dir={report_dir}",
        *(recording if opts.save_baseline else []),
    ]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child (its own SIGTERM handling ends it as a Ctrl-C would), then kill it after ``GRACE_S``. A
    second Ctrl-C meanwhile must not leave it running, so signals wait until it is gone."""
    with held(reraise=False):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def watch(
    proc: subprocess.Popen[bytes],
    label: str,
    cells: int,
    kept: Path,
    clock: Callable[[], float] = time.monotonic,
    every_s: float = HEARTBEAT_S,
    started: float | None = None,
) -> int:
    """Wait for a child, saying how far it got (the cells it has kept in ``kept``) every ``every_s``; its exit code.
    Past ``TIMEOUT_S`` it is an error. ``started``: when the child was started (and announced, ``announce``), for a
    child started before this wait began (a duet's second process)."""
    if started is None:
        started = clock()
        announce(label, cells)
    while True:
        try:
            code = proc.wait(timeout=every_s)
        except subprocess.TimeoutExpired:
            elapsed = clock() - started
            if elapsed > TIMEOUT_S:
                raise RerankPerfError(f"{label} still running after {duration(elapsed)}; stopped it") from None
            kept_now = count_lines(kept)  # 0 also once a finished child has removed its partial log
            so_far = f"{kept_now} of {cells} cells after" if kept_now else "still running after"
            say(f"rerank-perf: {label}: {so_far} {duration(elapsed)}")
            continue
        say(f"rerank-perf: {label}: {'done' if code == 0 else f'exit {code}'} in {duration(clock() - started)}")
        return code


def announce(label: str, cells: int) -> None:
    say(f"rerank-perf: {label}: {cells} cell{'' if cells == 1 else 's'} ...")


def run_child(config: pytest.Config, command: list[str], report_dir: Path, label: str, cells: int) -> RunReport:
    """Run one child to the end and read its report; a failed child is an error naming its command and output. An
    interrupt stops the child and is raised as ``Interrupted`` naming it."""
    shutil.rmtree(report_dir, ignore_errors=True)  # a fresh scratch store: an earlier run's cells must not clash
    report_dir.mkdir(parents=True)
    output = report_dir / "pytest-output.txt"  # a file, not a pipe: nothing to drain while waiting
    # a child is its own run, never an xdist worker of this one (it would pin itself to another GPU)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    with output.open("wb") as sink:
        proc = subprocess.Popen(command, cwd=config.rootpath, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            code = watch(proc, label, cells, PartialLog(report_dir).cells_path)
        except KeyboardInterrupt:
            stop(proc)
            raise Interrupted(f"while {label} ran") from None
        except BaseException:
            stop(proc)
            raise
    if code != 0:
        tail = "\n".join(output.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
        raise RerankPerfError(f"{label} failed (exit {code}): {' '.join(command)}\n{tail}")
    return load_report(report_dir / "report.json")


def pooled_reports(config: pytest.Config, tests: Sequence[str], out_dir: Path, cells: int) -> list[RunReport]:
    """``--rerank-processes K``: K-1 more processes measuring this run's whole matrix (``cells`` cells), one after
    the other; their reports (each with a section to pool, and cells that say whether the GPU was throttled)."""
    opts = get_options(config)
    matrix = opts.matrix(session_device(config))
    reports = []
    for i in range(1, opts.processes):
        report_dir = out_dir / f"process-{i}"
        command = child_command(config, tests, report_dir, matrix)
        report = run_child(config, command, report_dir, f"pooled process {i + 1} of {opts.processes}", cells)
        planned = {opts.workload_id(n) for n in matrix[0]}
        other = sorted({c["workload_id"] for c in report.cells} - planned)
        if other:  # a data file edited while this run measured: its id changed
            raise RerankPerfError(
                f"pooled process {i + 1} of {opts.processes} measured {', '.join(other)}, not this run's workload "
                f"({', '.join(sorted(planned))}): was {opts.data.path if opts.data else 'the workload'} changed "
                "during the run? Run again."
            )
        if report.section is None:
            raise RerankPerfError(
                f"pooled process {i + 1} of {opts.processes} measured no cell (every cell out of memory or skipped?); "
                f"see its report in {report_dir}, or run with --rerank-processes 1: {' '.join(command)}"
            )
        reports.append(report)
    return reports
