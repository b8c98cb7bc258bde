"""Interrupted anywhere, told once: Ctrl-C or SIGTERM during the tests or the session's end stops the children, exits
2 with one line saying what was recorded and where the cells went, and never half-writes a baseline.

Each phase is interrupted at its boundary (the phase's function raises ``KeyboardInterrupt``, or a real signal is
sent to this process where the phase holds signals), never by racing a timer."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.fsutil import write_atomic
from pytest_rerank_perf.machine import fingerprint
from pytest_rerank_perf.plugin import processes, session
from pytest_rerank_perf.plugin.interrupts import Interrupted, held, sigterm_as_ctrl_c
from pytest_rerank_perf.plugin.partial import PartialLog
from pytest_rerank_perf.store import json_files

# one cell, the fewest rounds: what each run costs is its start-up and one short cell
QUICK = (
    "--rerank-device=cpu",
    "--rerank-num-pairs=8",
    "--rerank-batch-sizes=1",
    "--rerank-pair-tokens=64",
    "--rerank-rounds=3",
)
RECORD = ("--rerank-save-baseline", "--rerank-force")


def _baselines(p: pytest.Pytester) -> list[Path]:
    return sorted((p.path / "baselines").glob("*.json"))


def _side_files(p: pytest.Pytester) -> list[Path]:
    return sorted((p.path / "baselines").glob("*.json.unsaved-*"))


def _the_line(result: pytest.RunResult) -> str:
    """The one line an interrupted run ends with; no traceback anywhere."""
    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out
    (line,) = [line for line in out.splitlines() if "rerank-perf: INTERRUPTED" in line]
    return line


def _interrupt(*_: Any, **__: Any) -> Any:
    raise KeyboardInterrupt


# --- signals ----------------------------------------------------------------------------------------------------


def _ctrl_c_in_a_held_block(done: list[str]) -> None:
    with held():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the rest of the block ran")


def _sigterm_to_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # never reached: the handler runs before the next bytecode


def test_held_signals_wait_for_the_block_then_interrupt() -> None:
    before = signal.getsignal(signal.SIGINT)
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _ctrl_c_in_a_held_block(done)
    assert done == ["the rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is before
    with held(reraise=False) as caught:
        os.kill(os.getpid(), signal.SIGINT)
    assert caught.signals == ["SIGINT"]


def test_sigterm_stops_like_ctrl_c_and_the_previous_handler_comes_back() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        restore = sigterm_as_ctrl_c()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            _sigterm_to_self()
        restore()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # someone else's handler is left alone
        sigterm_as_ctrl_c()()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_inside_asyncio_cancels_its_main_task_as_ctrl_c_does() -> None:
    """The load benchmark runs an event loop: asyncio answers Ctrl-C by cancelling its main task (its batchers close
    cleanly), not by raising wherever the loop happens to be; SIGTERM must take the same path."""
    seen: list[type[BaseException]] = []

    async def main() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(5)
        except BaseException as exc:
            seen.append(type(exc))
            raise

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        restore = sigterm_as_ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(main())
        restore()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [asyncio.CancelledError]


# --- temporary files an interrupted write left ----------------------------------------------------------------------


def test_the_next_write_removes_stale_temp_files_of_the_same_file_only(tmp_path: Path) -> None:
    path = tmp_path / "cpu-x.json"
    stale = tmp_path / ".cpu-x.json.ab12_x9z.tmp"  # what a process killed mid-write leaves
    others = [
        tmp_path / ".cpu-x.json.lock",
        tmp_path / ".cpu-x.json.toolongname.tmp",
        tmp_path / ".other.json.ab12_x9z.tmp",
        tmp_path / "cpu-x.json.ab12_x9z.tmp",
    ]
    for f in [stale, *others]:
        f.write_text("{")
        os.utime(f, ns=(1_000_000_000, 1_000_000_000))  # long ago
    newer = tmp_path / ".cpu-x.json.zz99zz99.tmp"  # a write under way elsewhere, started after this one
    newer.write_text("{")
    os.utime(newer, ns=(2 * 10**18, 2 * 10**18))
    write_atomic(path, "{}\n")
    assert path.read_text() == "{}\n"
    assert not stale.exists()
    assert all(f.exists() for f in [*others, newer])


def test_git_ignores_the_temp_files_of_baselines() -> None:
    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "baselines/.cpu-x.json.ab12_x9z.tmp"], cwd=root, capture_output=True
    )
    assert done.returncode == 0, done.stderr


# --- the pooled processes' children ---------------------------------------------------------------------------------


class _Config:
    def __init__(self, root: Path) -> None:
        self.rootpath = root


def _run_child_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> subprocess.Popen[bytes]:
    """``run_child`` on a child running ``script``; Ctrl-C arrives once the child wrote ``ready``."""
    ready = tmp_path / "ready"
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real_popen(*args, **kwargs))
        return started[0]

    def watch(*_: Any, **__: Any) -> int:
        while not ready.exists() and started[0].poll() is None:
            time.sleep(0.01)
        raise KeyboardInterrupt

    monkeypatch.setattr(processes.subprocess, "Popen", popen)
    monkeypatch.setattr(processes, "watch", watch)
    command = [sys.executable, "-c", script.replace("READY", repr(str(ready)))]
    with pytest.raises(Interrupted, match="while pooled process 2 of 3 ran"):
        processes.run_child(_Config(tmp_path), command, tmp_path / "child", "pooled process 2 of 3", 4)  # type: ignore[arg-type]
    return started[0]


def test_an_interrupted_pooled_child_is_terminated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = "import pathlib, time; pathlib.Path(READY).write_text('up'); time.sleep(600)"
    child = _run_child_interrupted(tmp_path, monkeypatch, script)
    assert child.returncode == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "GRACE_S", 0.1)
    script = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(READY).write_text('up'); time.sleep(600)"
    )
    child = _run_child_interrupted(tmp_path, monkeypatch, script)
    assert child.returncode == -signal.SIGKILL


class _SlowChild:
    """A child that runs for ``waits`` heartbeats, keeping one more cell each time."""

    def __init__(self, waits: int, kept: Path, clock: list[float]) -> None:
        self.waits, self.kept, self.clock = waits, kept, clock

    def wait(self, timeout: float) -> int:
        if self.waits == 0:
            return 0
        self.waits -= 1
        self.clock[0] += timeout
        self.kept.parent.mkdir(parents=True, exist_ok=True)
        with self.kept.open("a") as f:
            f.write("{}\n")
        raise subprocess.TimeoutExpired("pytest", timeout)


def test_a_pooled_process_says_how_far_it_got_every_heartbeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(processes, "say", lines.append)
    clock = [100.0]
    kept = PartialLog(tmp_path).cells_path
    child = _SlowChild(3, kept, clock)
    code = processes.watch(child, "pooled process 2 of 3", 4, kept, clock=lambda: clock[0], every_s=20.0)  # type: ignore[arg-type]
    assert code == 0
    assert lines == [
        "rerank-perf: pooled process 2 of 3: 4 cells ...",
        "rerank-perf: pooled process 2 of 3: 1 of 4 cells after 20 s",
        "rerank-perf: pooled process 2 of 3: 2 of 4 cells after 40 s",
        "rerank-perf: pooled process 2 of 3: 3 of 4 cells after 1 min 00 s",
        "rerank-perf: pooled process 2 of 3: done in 1 min 00 s",
    ]


def test_a_child_started_earlier_is_timed_from_its_start_and_nothing_kept_reads_as_still_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A duet's second process is waited for after the first ends: its time counts from its own start. A heartbeat
    that finds no partial log (none yet, or a finished child removed it) says "still running", not "0 of N"."""
    lines: list[str] = []
    monkeypatch.setattr(processes, "say", lines.append)
    clock = [100.0]
    child = _SlowChild(1, tmp_path / "elsewhere" / "cells.jsonl", clock)
    nothing_kept = PartialLog(tmp_path).cells_path
    code = processes.watch(child, "A/B pair 1 of 2: head (.)", 6, nothing_kept, clock=lambda: clock[0], started=70.0)  # type: ignore[arg-type]
    assert code == 0
    assert lines == [
        "rerank-perf: A/B pair 1 of 2: head (.): still running after 50 s",
        "rerank-perf: A/B pair 1 of 2: head (.): done in 50 s",
    ]


# --- each phase of a run, interrupted (in-process pytester runs) ----------------------------------------------------


def test_an_interrupt_in_the_pooled_processes_records_nothing_and_keeps_the_cells(
    bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "pooled_reports", _interrupt)
    result = bench.runpytest(*QUICK, *RECORD, "--rerank-processes=2")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert _baselines(bench) == []
    (side,) = _side_files(bench)
    line = _the_line(result)
    assert line.startswith("rerank-perf: INTERRUPTED while the pooled processes ran: baseline not recorded")
    assert f"this run's 1 cell(s) were saved to baselines/{side.name}" in line
    assert "reports/partial/cells.jsonl" in line
    kept = (bench.path / "reports" / "partial" / "cells.jsonl").read_text().splitlines()
    assert [json.loads(c)["batch_size"] for c in kept] == [1]
    report = json.loads((bench.path / "reports" / "report.json").read_text())
    assert "interrupted while the pooled processes ran; this report is incomplete" in report["failure"]
    assert len(report["cells"]) == 1


def test_an_interrupt_while_the_fingerprint_is_measured_sets_the_cells_aside(
    bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint, "measure", _interrupt)
    result = bench.runpytest(*QUICK, *RECORD)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert _baselines(bench) == []
    (side,) = _side_files(bench)
    (section,) = json.loads(side.read_text())["models"].values()
    assert len(section["cells"]) == 1
    line = _the_line(result)
    assert line.startswith("rerank-perf: INTERRUPTED while the machine fingerprint was measured: baseline not")


def test_an_interrupted_comparison_leaves_no_earlier_verdict_behind(
    bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: an earlier run's "pass" must not read as this run's verdict."""
    earlier = bench.path / "reports" / "rerank-verdict.json"
    earlier.parent.mkdir()
    earlier.write_text('{"status": "pass"}\n')
    monkeypatch.setattr(fingerprint, "measure", _interrupt)
    result = bench.runpytest(*QUICK, "--rerank-gate=enforce")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert not earlier.exists()
    line = _the_line(result)
    assert line.startswith("rerank-perf: INTERRUPTED while the machine fingerprint was measured: not compared with")


@pytest.mark.parametrize("when", ["during", "after"])
def test_ctrl_c_while_the_baseline_is_written_waits_for_it_and_says_it_was_recorded(
    bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    real = json_files.write_atomic

    def signalled(path: Path, text: str) -> None:
        # the recording holds signals: this Ctrl-C reaches a handler that waits, never pytest's default
        assert signal.getsignal(signal.SIGINT) not in (signal.default_int_handler, signal.SIG_DFL)
        if when == "during":
            os.kill(os.getpid(), signal.SIGINT)
        real(path, text)
        if when == "after":
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(json_files, "write_atomic", signalled)
    result = bench.runpytest(*QUICK, *RECORD)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (baseline,) = _baselines(bench)
    assert _side_files(bench) == []
    line = _the_line(result)
    assert line.startswith(
        f"rerank-perf: INTERRUPTED while the baseline was recorded: baseline recorded: baselines/{baseline.name}"
    )


def test_an_interrupt_while_the_report_is_written_says_the_baseline_was_recorded(
    bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "write_report", _interrupt)
    result = bench.runpytest(*QUICK, *RECORD)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (baseline,) = _baselines(bench)
    line = _the_line(result)
    assert line.startswith(
        f"rerank-perf: INTERRUPTED while the report was written: baseline recorded: baselines/{baseline.name}"
    )
    assert line.endswith("report (incomplete): reports/index.md")
    report = json.loads((bench.path / "reports" / "report.json").read_text())
    assert report["baseline_recorded"] == f"baselines/{baseline.name}"
    assert "this report is incomplete" in report["failure"]


SIGTERMED = """
import os, signal

def test_zy_broken():
    assert 1 == 2, "a failure the interrupted run must keep"

def test_zz_sigterm():
    # never the outer test process's default (death): the run turned SIGTERM into Ctrl-C
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    os.kill(os.getpid(), signal.SIGTERM)
"""


def test_sigterm_during_the_tests_stops_the_run_like_ctrl_c_and_keeps_cells_and_failures(
    bench: pytest.Pytester,
) -> None:
    bench.makepyfile(test_zz=SIGTERMED)
    before = signal.getsignal(signal.SIGTERM)
    result = bench.runpytest(*QUICK, no_reraise_ctrlc=True)  # pytester re-raises an inner Ctrl-C by default
    assert signal.getsignal(signal.SIGTERM) is before  # the run put back what it found
    assert result.ret == pytest.ExitCode.INTERRUPTED
    line = _the_line(result)
    assert line.startswith("rerank-perf: INTERRUPTED during the tests (SIGTERM): not compared with the baseline")
    assert "reports/partial/cells.jsonl" in line
    assert "reports/partial/failures.txt" in line
    failures = (bench.path / "reports" / "partial" / "failures.txt").read_text()
    assert "FAILED test_zz.py::test_zy_broken (call)" in failures
    assert "a failure the interrupted run must keep" in failures


# --- a real SIGTERM to a real run while its pooled process runs -----------------------------------------------

WAITING_CHILD = """
import os, time
from pathlib import Path

def test_a_pooled_child_waits(pytestconfig):  # first in the file: the child waits before it loads the model
    ready = os.environ.get("RERANK_TEST_READY")
    if ready and pytestconfig.getoption("rerank_processes") == "1":  # only in the pooled child
        Path(ready).write_text(str(os.getpid()))
        time.sleep(600)
"""


def test_sigterm_while_a_pooled_process_runs_stops_both_and_leaves_the_baseline(bench: pytest.Pytester) -> None:
    """(Each pooled process's announcement is asserted in test_gate_runs' pooled-process test.)"""
    test_bench = bench.path / "test_bench.py"
    test_bench.write_text(WAITING_CHILD + test_bench.read_text())  # the child runs the matrix file only
    assert bench.runpytest(*QUICK, *RECORD).ret == 0
    assert not (bench.path / "reports" / "partial").exists()  # a complete run's report supersedes what it kept
    (baseline,) = _baselines(bench)
    before = baseline.read_bytes()

    ready = bench.path / "child-ready"
    env = {**os.environ, "RERANK_TEST_READY": str(ready)}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *QUICK, *RECORD, "--rerank-processes=2"]
    parent = subprocess.Popen(command, cwd=bench.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # a safety net only: the signal is sent once the child says it is up
        while not ready.exists():
            assert time.monotonic() < deadline
            assert parent.poll() is None, parent.communicate()[0].decode()
            time.sleep(0.05)
        child = int(ready.read_text())
        parent.send_signal(signal.SIGTERM)
        out = parent.communicate(timeout=120)[0].decode()
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "Traceback" not in out
    (line,) = [line for line in out.splitlines() if "rerank-perf: INTERRUPTED" in line]
    assert line.startswith("rerank-perf: INTERRUPTED while pooled process 2 of 2 ran: baseline not recorded")
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert baseline.read_bytes() == before
    assert len(_side_files(bench)) == 1
