"""A/B end to end on the CPU tiny twin, on a virtual clock: one lean run that finds an injected slowdown (two pairs
of one-cell processes), a side that fails (exit 125), and the usage errors, which start no process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

CELL = ("--rerank-device", "cpu", "--rerank-pair-tokens", "32", "--rerank-num-pairs", "12", "--rerank-batch-sizes", "4")
AB = ("--rerank-ab-base", ".", "--rerank-ab-head", ".", "--rerank-ab-pairs", "2", "--rerank-rounds", "3")


def test_an_ab_run_finds_a_slowdown_on_the_head_and_exits_1(
    bench: pytest.Pytester, virtual_clock: Callable[..., tuple[str, ...]]
) -> None:
    clock = virtual_clock(noise=0.01)
    result = bench.runpytest(*clock, *CELL, *AB, "--rerank-ab-head-arg=--rerank-inject-slowdown=0.2", "-q")
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "rerank-perf: A/B: 2 pairs of fresh processes (*), 1 cell(s) each: base ., head .",  # duet on 2 cores
            "rerank-perf: A/B pair 1 of 2: * (.): done in *",
            "*= rerank-perf A/B =*",
            "A/B: FAIL (exit 1): 2 regression(s) beyond 5% and significant",
            "n12/bs4*throughput*-16.7%*REGRESSION",
        ]
    )
    ab = json.loads((bench.path / "reports" / "report.json").read_text())["ab"]
    assert (ab["status"], ab["exit_code"]) == ("fail", 1)
    assert sorted(ab["orders"]) == ["base,head", "head,base"]  # each side went first once
    assert ab["model_key"].startswith("twin:")
    assert ab["base"]["software"]["torch"]
    assert (bench.path / "reports" / "ab.png").exists()
    assert "## A/B: head against base on this machine" in (bench.path / "reports" / "index.md").read_text()


def test_a_side_that_fails_is_no_verdict_exit_125(bench: pytest.Pytester) -> None:
    bad = ("--rerank-ab-base-arg=--rerank-batch-sizes=0", "--rerank-ab-head-arg=--rerank-batch-sizes=0")
    result = bench.runpytest(*CELL, *AB, *bad)
    assert result.ret == 125, result.stdout.str()
    result.stdout.fnmatch_lines(["A/B: NO VERDICT (exit 125, could not judge): A/B pair 1 of 2: * failed (exit 4)*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rerank-ab-base", "."), "--rerank-ab-base without --rerank-ab-head*"),
        (("--rerank-ab-base", ".", "--rerank-ab-head", "no-such-ref"), "*not a commit of * nor a directory*"),
        ((*AB[:4], "--rerank-ab-pairs", "1"), "*--rerank-ab-pairs*"),
        ((*AB[:4], "--rerank-save-baseline"), "*--rerank-save-baseline with an A/B*"),
        (("--rerank-ab-head-arg=-x",), "*without an A/B*"),
        ((*AB[:4], "--rerank-inject-slowdown", "0.1"), "*give it to one side: --rerank-ab-head-arg=*"),
    ],
)
def test_bad_ab_input_is_a_usage_error(bench: pytest.Pytester, args: tuple[str, ...], message: str) -> None:
    result = bench.runpytest(*CELL, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_an_interrupted_ab_stops_its_processes_judges_nothing_and_exits_2(
    bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or SIGTERM, which the plugin turns into one) while a pair runs, injected where the run waits for it."""
    from pytest_rerank_perf.plugin import ab

    launched: list[Any] = []

    def interrupted(launch: Any, cells: int) -> Any:
        launched.append(launch.proc)
        raise KeyboardInterrupt

    monkeypatch.setattr(ab, "_collect", interrupted)
    result = bench.runpytest(*CELL, *AB)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out
    (line,) = [line for line in out.splitlines() if "INTERRUPTED" in line]
    assert line.startswith("A/B: INTERRUPTED (exit 2) while A/B pair 1 of 2 ran: no verdict")
    assert all(proc.poll() is not None for proc in launched)  # the children were stopped, not left running
    ab_report = json.loads((bench.path / "reports" / "report.json").read_text())["ab"]
    assert (ab_report["status"], ab_report["exit_code"], ab_report["comparisons"]) == ("interrupted", 2, [])


def test_a_sides_process_ignores_ab_options_it_inherits(
    bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A/B options in ini or PYTEST_ADDOPTS reach the children too: there they are ignored, or every child would
    start an A/B of its own."""
    args = ("--rerank-ab-base", "no-such-ref", "--rerank-ab-head", ".", "--collect-only", "-q")
    assert bench.runpytest(*args).ret == pytest.ExitCode.USAGE_ERROR
    monkeypatch.setenv("RERANK_AB_CHILD", "1")
    assert bench.runpytest(*args).ret == pytest.ExitCode.OK
