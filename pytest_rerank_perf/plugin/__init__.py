"""The pytest plugin's hooks; fixtures live in ``fixtures``, the session's behaviour in ``session``.

Loaded through the ``pytest11`` entry point (or ``-p pytest_rerank_perf.plugin`` where it is not installed).
The plugin is active in every pytest run of an environment that has it installed, so nothing here imports torch
or loads a model until a test asks for a fixture that needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from .. import progress
from ..backends.variants import check_variants
from ..errors import UsageError
from ..measurements.cell import Cell
from ..report.run_report import RunReport
from .ab import AB_RESULT, check_ab, parse_specs, run_ab, write_ab_report, write_ab_summary
from .fixtures import (
    SESSION_KEY,
    rerank_bench,
    rerank_cell,
    rerank_hardware,
    rerank_invariance,
    rerank_model,
    rerank_options,
    rerank_runner,
    rerank_runners,
    rerank_session,
    rerank_session_of,
    rerank_workload,
)
from .interrupts import Interrupted, held, sigterm_as_ctrl_c, sigterm_seen
from .options import add_options
from .processes import matrix_items
from .runtime import configure, describe_run, get_options, machine_facts, session_device, session_profile, under_root
from .session import RerankSession
from .summary import write_summary
from .winddown import wind_down

__all__ = [
    "rerank_bench",
    "rerank_cell",
    "rerank_hardware",
    "rerank_invariance",
    "rerank_model",
    "rerank_options",
    "rerank_runner",
    "rerank_runners",
    "rerank_session",
    "rerank_workload",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


_RESTORE = pytest.StashKey[list[Callable[[], None]]]()
_STOPPED = pytest.StashKey[str]()  # what stopped the tests: Ctrl-C, SIGTERM or pytest.exit


class _StopWatcher:
    """What stopped the tests, for the line an interrupted run ends with (this hook is given no config)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        value = excinfo.value
        if isinstance(value, pytest.exit.Exception):
            self.config.stash[_STOPPED] = f"during the tests (pytest.exit: {value.msg})"
        else:
            self.config.stash[_STOPPED] = f"during the tests ({'SIGTERM' if sigterm_seen() else 'Ctrl-C'})"


def pytest_configure(config: pytest.Config) -> None:
    configure(config)
    plan = get_options(config).ab
    if plan is not None:
        try:
            parse_specs(config, plan)
            check_ab(config, plan)
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[_RESTORE] = []
    config.pluginmanager.register(_StopWatcher(config), "rerank-perf-stop-watcher")


def pytest_collection_finish(session: pytest.Session) -> None:
    """A run of rerank-perf benchmarks: SIGTERM (CI runners, ``timeout``) stops it as Ctrl-C does, with what it
    measured kept, instead of killing it; long work says how far it got. Other pytest runs in this environment keep
    their own SIGTERM and output."""
    if any(name.startswith("rerank_") for item in session.items for name in getattr(item, "fixturenames", ())):
        session.config.stash[_RESTORE] += [sigterm_as_ctrl_c(), progress.attach(session.config)]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """An A/B run measures its two sides in fresh processes instead of running its own tests."""
    if get_options(session.config).ab is None or session.config.option.collectonly:
        return None
    if session.testsfailed:  # collection errors: pytest's own loop stops the run, as without an A/B
        return None
    if not matrix_items(session.items):
        raise pytest.UsageError("an A/B measures the matrix: run it on benchmarks/test_throughput_matrix.py")
    session.config.stash[AB_RESULT] = run_ab(session)
    return True


def pytest_unconfigure(config: pytest.Config) -> None:
    restorers: list[Callable[[], None]] = config.stash.get(_RESTORE, [])
    for restore in reversed(restorers):
        restore()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``rerank_cell`` over num_pairs x batch_size x variant, num_pairs-major so OOM boundaries are
    found in order, and ``rerank_load_scenario`` over the concurrent scenarios."""
    opts = get_options(metafunc.config)
    if "rerank_load_scenario" in metafunc.fixturenames:
        loaded = [s for s in opts.scenarios if s.concurrent]
        metafunc.parametrize("rerank_load_scenario", loaded, ids=[s.name for s in loaded])
    if "rerank_cell" not in metafunc.fixturenames:
        return
    device = session_device(metafunc.config)
    try:
        check_variants(opts.variants, device, opts.backend, opts.dtype)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    num_pairs, batch_sizes = opts.matrix(device)
    # each variant's cell right after predict's: the score check and the comparison see the same warm model
    cells = [Cell(n, b, opts.workload_label, v) for n in num_pairs for b in batch_sizes for v in opts.variants]
    # indirect, with plain-JSON params: pytest-benchmark saves them, and names runs by the id (workload included)
    metafunc.parametrize("rerank_cell", [c.param() for c in cells], ids=[c.id for c in cells], indirect=True)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """The profile id, the model as asked for and the hardware profile (``runtime.machine_facts``): pytest-benchmark's
    ``--benchmark-compare`` warns when machine_info differs, so a twin run against a real-weights one, or one GPU
    against another, is flagged there too."""
    machine_info.update(machine_facts(config))


def _as_json(value: Any) -> str:
    """As pytest-benchmark compares machine_info: a tuple now equals the list it was saved as."""
    return json.dumps(value, sort_keys=True, default=str)


@pytest.hookimpl(wrapper=True)
def pytest_benchmark_compare_machine_info(
    config: pytest.Config, benchmarksession: Any, machine_info: dict[str, Any], compared_benchmark: dict[str, Any]
) -> Generator[None, None, None]:
    """pytest-benchmark's "machine_info is different" warning names its storage relative to the current directory,
    and crashes the run (INTERNALERROR) for a ``--benchmark-storage`` outside it (ionelmc/pytest-benchmark#217): the
    warning is given here instead, with the absolute path and the keys that differ."""
    try:
        return (yield)
    except ValueError:
        storage = benchmarksession.storage
        try:
            storage.location  # noqa: B018  (the property that raises)
        except ValueError:
            saved = compared_benchmark.get("machine_info") or {}
            keys = sorted(k for k in {*machine_info, *saved} if _as_json(machine_info.get(k)) != _as_json(saved.get(k)))
            benchmarksession.logger.warning(
                f"Benchmark machine_info is different: {', '.join(keys)} (location: {storage.path}). rerank-perf's "
                "gate compares by model key and hardware profile instead: see docs/gate.md"
            )
            return None
        raise


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    rs = rerank_session_of(config)
    report = rs.report or rs.build_report(session_device(config), session_profile(config))
    output_json["rerank"] = report.to_dict()


def _unfinished(session: pytest.Session, exitstatus: int) -> str | None:
    """Why this run is not complete enough to record a baseline from; None when it is."""
    if session.testsfailed:
        return f"{session.testsfailed} test(s) failed"
    stopped = session.shouldstop or session.shouldfail
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or stopped:
        why = stopped if isinstance(stopped, str) else f"exit status {int(exitstatus)}: Ctrl-C, pytest.exit or an error"
        return f"the run was interrupted ({why}) before every test ran"
    return None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: the report as final (xfail applied)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A failing test's report is kept as the run goes (``partial.py``): a run stopped before its end keeps it."""
    outcome = yield
    report = outcome.get_result()
    rs = item.config.stash.get(SESSION_KEY, None)
    if rs is not None and report.failed:
        rs.partial.add_failure(report.nodeid, report.when, report.longreprtext)


def _hand_over(config: pytest.Config, rs: RerankSession) -> None:
    """An xdist worker hands its report to the controller, which writes the files."""
    if rs.report is not None:
        config.workeroutput["rerank_report"] = json.dumps(rs.report.to_dict(), default=str)  # type: ignore[attr-defined]


def _finish(session: pytest.Session, exitstatus: int, rs: RerankSession, report_dir: Path) -> None:
    config = session.config
    if rs.worker_reports:
        rs.merge_workers()
        rs.conclude(session, report_dir)
    elif rs.measured:
        unfinished = _unfinished(session, exitstatus)
        pooled, failure = rs.pool_processes(config, session.items, report_dir, unfinished)
        report = rs.finish(session_device(config), session_profile(config), unfinished or failure, pooled)
        if failure and not report.failure:  # a refused recording already says so, with where its cells went
            report.failure = failure
        if hasattr(config, "workeroutput"):
            _hand_over(config, rs)
            rs.partial.discard()
        else:
            rs.conclude(session, report_dir)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
    """Record the baseline or run the gate, then build the report: all before pytest-benchmark writes its JSON
    (which then includes it). An xdist worker hands its report to the controller, which merges and writes.

    Interrupted (Ctrl-C, SIGTERM), during the tests or here: ``wind_down`` keeps what was measured and says so in
    one line; the exit status is 2. What follows (pytest-benchmark's JSON, the summary) is not cut short."""
    config = session.config
    report_dir = under_root(config, get_options(config).report_dir)
    ab = config.stash.get(AB_RESULT, None)
    if ab is not None:
        write_ab_report(config, ab, report_dir)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = ab.exit_code
    rs = config.stash.get(SESSION_KEY, None)
    if rs is None:
        yield
        return
    try:
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            if rs.worker_reports:
                rs.merge_workers()
            wind_down(rs, session, report_dir, config.stash.get(_STOPPED, "during the tests"))
        else:
            _finish(session, exitstatus, rs, report_dir)
    except KeyboardInterrupt as exc:
        wind_down(rs, session, report_dir, exc.during if isinstance(exc, Interrupted) else rs.phase)
    if rs.interrupted and hasattr(config, "workeroutput"):
        _hand_over(config, rs)
    with held(reraise=False) as late:
        yield
    if late and not rs.interrupted:
        session.exitstatus = pytest.ExitCode.INTERRUPTED
        rs.interrupted = "rerank-perf: INTERRUPTED after the run's end: what is printed above was recorded and written"
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(rs.interrupted, red=True)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist installed it must not be validated
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's report."""
    raw = getattr(node, "workeroutput", {}).get("rerank_report")
    if raw:
        worker = getattr(node, "gateway", None)
        source = Path(f"xdist worker {getattr(worker, 'id', '?')}")
        rerank_session_of(node.config).worker_reports.append(RunReport.from_dict(json.loads(raw), source))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    ab = config.stash.get(AB_RESULT, None)
    if ab is not None:
        write_ab_summary(terminalreporter, ab, get_options(config).report_dir)
    rs = config.stash.get(SESSION_KEY, None)
    if rs is None:
        return
    if rs.report is not None:  # an interrupted run's failure is its one line, printed last
        report = replace(rs.report, failure=None) if rs.interrupted else rs.report
        write_summary(terminalreporter, report, get_options(config), describe_run(config))
    if rs.interrupted:
        terminalreporter.write_line(rs.interrupted, red=True)
