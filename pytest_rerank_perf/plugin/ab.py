"""``--rerank-ab-base SPEC --rerank-ab-head SPEC``: this run measures two sides instead of itself.

The sides are made runnable first (``ab/sides.py``: a checkout extracted, an environment built), then K pairs of
fresh pytest processes measure this run's planned matrix cells, the same seeds on both sides, each pair's order
random (``ab/schedule.py``); interleaved (one after the other) or, on a CPU, as a duet (both at once, a core each,
so both share the machine's interference). The pairs' reports are judged on paired ratios (``ab/judge.py``) and the
run's exit code is the verdict's: 0 pass, 1 regression, 125 could not judge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..ab.judge import ChildRun, judge, read_child, settings_for
from ..ab.result import ABResult
from ..ab.schedule import BASE, HEAD, pair_orders
from ..ab.sides import CACHE, Side, SideError, prepare
from ..ab.spec import Spec, parse_spec
from ..errors import RerankPerfError, UsageError
from ..gate.thresholds import GateSettings
from ..progress import say
from ..report.folder import write_report
from ..report.run_report import RunReport
from ..store.schema import now_utc
from .interrupts import held
from .options import ABPlan
from .partial import PartialLog
from .processes import announce, child_command, matrix_items, stop, test_files, watch
from .runtime import get_options, session_device, session_profile

SPECS_KEY = pytest.StashKey[tuple[Spec, Spec]]()
CHILD_ENV = "RERANK_AB_CHILD"  # set in a side's processes: they measure; A/B options from ini or PYTEST_ADDOPTS
# would otherwise make every child an A/B of its own
AB_RESULT = pytest.StashKey[ABResult]()


class SideFailed(RerankPerfError):
    """A side's process exited non-zero or left no readable report."""


def parse_specs(config: pytest.Config, plan: ABPlan) -> None:
    """Both SPECs checked at configure time: a bad one is a usage error before anything runs."""
    repo = config.rootpath
    base = parse_spec("--rerank-ab-base", plan.base, repo, config.invocation_params.dir)
    head = parse_spec("--rerank-ab-head", plan.head, repo, config.invocation_params.dir)
    config.stash[SPECS_KEY] = (base, head)


@dataclass
class _Launch:
    role: str
    side: Side
    proc: subprocess.Popen[bytes]
    report_dir: Path
    command: list[str]
    label: str
    started: float  # time.monotonic() at launch


def _launch(
    config: pytest.Config, side: Side, tests: Sequence[str], report_dir: Path, label: str, core: int | None
) -> _Launch:
    opts = get_options(config)
    assert opts.ab is not None
    command = child_command(config, tests, report_dir, opts.matrix(session_device(config)))
    command[0] = side.python
    command = [a for a in command if not a.startswith("--rerank-inject-slowdown=")]  # a side's own, if any
    command += list(opts.ab.base_args if side.role == BASE else opts.ab.head_args)
    shutil.rmtree(report_dir, ignore_errors=True)
    report_dir.mkdir(parents=True)
    env = side.env({k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")} | {CHILD_ENV: "1"})
    pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
    with (report_dir / "pytest-output.txt").open("wb") as sink:
        proc = subprocess.Popen(command, cwd=side.root, env=env, stdout=sink, stderr=subprocess.STDOUT, preexec_fn=pin)
    return _Launch(side.role, side, proc, report_dir, command, label, time.monotonic())


def _collect(launch: _Launch, cells: int) -> ChildRun:
    kept = PartialLog(launch.report_dir).cells_path
    code = watch(launch.proc, launch.label, cells, kept, started=launch.started)
    output = launch.report_dir / "pytest-output.txt"
    if code != 0:
        tail = "\n".join(output.read_text(encoding="utf-8", errors="replace").splitlines()[-12:])
        raise SideFailed(f"{launch.label} failed (exit {code}): {' '.join(launch.command)}\n{tail}")
    return read_child(launch.report_dir / "report.json")


def duet_core(pair: int, role: str, cores: Sequence[int]) -> int:
    """A duet's core for ``role`` in pair ``pair`` (from 1): the sides swap cores every pair, whatever the order."""
    return cores[(pair + (role == HEAD)) % 2]


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []


def _same_code(base: Side, head: Side) -> bool:
    if base.root == head.root:
        return True
    return base.commit is not None and base.commit == head.commit and not base.dirty and not head.dirty


def run_ab(session: pytest.Session) -> ABResult:
    """Prepare both sides, run the K pairs, judge them. Every failure ends up in the result (fail closed), an
    interrupt too (Ctrl-C, or SIGTERM as the plugin turns it into one): the children are stopped, nothing is judged,
    and the result says where it stopped (exit 2)."""
    config = session.config
    opts = get_options(config)
    assert opts.ab is not None
    device = session_device(config)
    cores = _cores()
    plan = opts.ab.resolved(device.startswith("cuda"), len(cores))
    assert plan.pairs is not None
    base_spec, head_spec = config.stash[SPECS_KEY]
    settings = settings_for("cuda" if device.startswith("cuda") else "cpu", opts.thresholds, opts.alpha, plan.threshold)
    result = ABResult(
        base={"spec": base_spec.text, "kind": base_spec.kind},
        head={"spec": head_spec.text, "kind": head_spec.kind},
        pairs=plan.pairs,
        mode=plan.mode,
        threshold=plan.threshold,
        alpha=opts.alpha,
    )
    matrix = matrix_items(session.items)
    tests, cells = test_files(matrix), len(matrix)
    out = Path(opts.report_dir)
    out = (out if out.is_absolute() else config.rootpath / out) / "ab"
    shutil.rmtree(out, ignore_errors=True)  # an earlier A/B's pairs must not pass for this one's
    try:
        return _measure(session, result, plan, settings, tests, cells, out, cores)
    except KeyboardInterrupt:
        result.interrupted = result.interrupted or "while the sides were made runnable"
        return result
    except Exception as exc:  # anything unforeseen is no verdict (125), never an internal error bisect reads as bad
        result.failure = f"the A/B stopped on an unexpected error: {exc!r}"
        return result


def _measure(
    session: pytest.Session,
    result: ABResult,
    plan: ABPlan,
    settings: GateSettings,
    tests: list[str],
    cells: int,
    out: Path,
    cores: list[int],
) -> ABResult:
    config = session.config
    base_spec, head_spec = config.stash[SPECS_KEY]
    assert plan.pairs is not None
    cache = config.rootpath / CACHE
    try:
        sides = {
            BASE: prepare(BASE, base_spec, config.rootpath, cache, say),
            HEAD: prepare(HEAD, head_spec, config.rootpath, cache, say),
        }
    except SideError as exc:
        result.failure = str(exc)
        return result
    result.base, result.head = sides[BASE].identity(), sides[HEAD].identity()
    missing = [f"{s.role}: {s.root / t}" for s in sides.values() for t in tests if not (s.root / t).exists()]
    if missing:
        result.failure = f"a side's checkout lacks the matrix benchmark ({'; '.join(missing)})"
        return result
    if not _same_code(sides[BASE], sides[HEAD]):
        result.notes.append(
            "the sides run different code of this harness as well: what is compared includes pytest-rerank-perf's "
            "own measurement code, not only the model stack"
        )
    duet = plan.mode == "duet"  # on fewer than 2 cores: refused at configure (check_ab), never resolved to by auto
    say(
        f"rerank-perf: A/B: {plan.pairs} pairs of fresh processes ({plan.mode}), {cells} cell(s) each: base "
        f"{base_spec.label}, head {head_spec.label}"
    )
    runs: list[tuple[ChildRun, ChildRun]] = []
    for i, order in enumerate(pair_orders(plan.pairs, get_options(config).seed), 1):
        result.orders.append(",".join(order))
        launches: list[_Launch] = []
        try:
            got: dict[str, ChildRun] = {}
            for role in order:
                label = f"A/B pair {i} of {plan.pairs}: {role} ({sides[role].spec.label})"
                core = duet_core(i, role, cores) if duet else None
                announce(label, cells)
                launches.append(_launch(config, sides[role], tests, out / f"pair-{i}-{role}", label, core))
                if not duet:
                    got[role] = _collect(launches[-1], cells)
            for launch in launches if duet else []:
                got[launch.role] = _collect(launch, cells)
        except KeyboardInterrupt:
            with held(reraise=False):  # a second Ctrl-C must not leave a child running
                for launch in launches:
                    stop(launch.proc)
            result.interrupted = f"while A/B pair {i} of {plan.pairs} ran"
            raise
        except (RerankPerfError, OSError, subprocess.SubprocessError) as exc:
            for launch in launches:
                stop(launch.proc)
            result.orders.pop()
            result.failure = str(exc)
            break
        runs.append((got[BASE], got[HEAD]))
    if result.failure:  # a side crashed: no verdict, whatever the pairs before it showed (their reports stay)
        return result
    return judge(result, runs, settings, planned=cells)


def check_ab(config: pytest.Config, plan: ABPlan) -> None:
    """What an A/B cannot be combined with, once the device is known."""
    workers = config.getoption("numprocesses", default=None)
    if workers:
        raise UsageError(f"-n {workers} with an A/B: its processes take turns on one device; drop -n")
    if plan.mode == "duet" and session_device(config).startswith("cuda"):
        raise UsageError("--rerank-ab-mode duet on a GPU: one GPU runs one side at a time; use interleaved")
    if plan.mode == "duet" and len(_cores()) < 2:
        raise UsageError(
            f"--rerank-ab-mode duet needs 2 CPU cores for this process; it may use {len(_cores())}: use interleaved"
        )


def write_ab_report(config: pytest.Config, result: ABResult, report_dir: Path) -> None:
    """The report folder of an A/B run: report.json (its ``ab`` section), index.md and ab.png. A stored-baseline
    verdict of an earlier run is removed: it would pass for this run's."""
    device = session_device(config)
    profile = session_profile(config)
    report = RunReport(
        now_utc(), device, profile.to_dict(), profile.summary(), result.model, results={ABResult.key: result}
    )
    write_report(report, report_dir)
    stale_files = ["rerank-verdict.json", "rerank-summary.md"] + ([] if result.comparisons else ["ab.png"])
    for stale in stale_files:
        (report_dir / stale).unlink(missing_ok=True)


def write_ab_summary(tr: Any, result: ABResult, report_dir: str) -> None:
    """Verdict first, then the sides and the comparisons that moved (``ABResult.summary_lines``)."""
    tr.write_sep("=", "rerank-perf A/B")
    passed = result.status == "pass"
    for k, line in enumerate(result.summary_lines()):
        tr.write_line(line, red=k == 0 and not passed, green=k == 0 and passed, bold=k == 0)
    tr.write_line(
        f"report: {report_dir}/index.md, {report_dir}/report.json, {report_dir}/ab.png; each process's "
        f"output under {report_dir}/ab/"
    )
