"""The pytest plugin's hooks; fixtures live in ``fixtures``, the session's behaviour in ``session``.

Loaded through the ``pytest11`` entry point (or ``-p pytest_rerank_perf.plugin`` where it is not installed).
The plugin is active in every pytest run of an environment that has it installed, so nothing here imports torch
or loads a model until a test asks for a fixture that needs it.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from .backends.variants import check_variants
from .errors import UsageError
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
from .measurements.cell import Cell
from .options import add_options
from .report.run_report import RunReport
from .runtime import configure, describe_run, get_options, session_device, session_profile, under_root
from .summary import write_summary

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


def pytest_configure(config: pytest.Config) -> None:
    configure(config)


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
    """The hardware profile, and the model key and profile id at the top: pytest-benchmark's ``--benchmark-compare``
    warns when machine_info differs, so a twin run against a real-weights one is flagged there too."""
    try:
        profile = session_profile(config)
    except pytest.UsageError as exc:
        machine_info["rerank_hardware"] = {"error": str(exc)}
        return
    identity = rerank_session_of(config).identity or {}
    machine_info["rerank_profile_id"] = profile.profile_id
    machine_info["rerank_model_key"] = identity.get("key", "not loaded")
    machine_info["rerank_hardware"] = profile.to_dict()


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


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
    """Record the baseline or run the gate, then build the report: all before pytest-benchmark writes its JSON
    (which then includes it). An xdist worker hands its report to the controller, which merges and writes."""
    config = session.config
    rs = config.stash.get(SESSION_KEY, None)
    report_dir = under_root(config, get_options(config).report_dir)
    if rs is not None and rs.worker_reports:
        rs.merge_workers()
        rs.conclude(session, report_dir)
    elif rs is not None and rs.measured:
        unfinished = _unfinished(session, exitstatus)
        pooled, failure = rs.pool_processes(config, session.items, report_dir, unfinished)
        report = rs.finish(session_device(config), session_profile(config), unfinished or failure, pooled)
        if failure and not report.failure:  # a refused recording already says so, with where its cells went
            report.failure = failure
        if hasattr(config, "workeroutput"):  # an xdist worker: the controller writes the files
            config.workeroutput["rerank_report"] = json.dumps(report.to_dict(), default=str)
        else:
            rs.conclude(session, report_dir)
    yield


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist installed it must not be validated
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's report."""
    raw = getattr(node, "workeroutput", {}).get("rerank_report")
    if raw:
        worker = getattr(node, "gateway", None)
        source = Path(f"xdist worker {getattr(worker, 'id', '?')}")
        rerank_session_of(node.config).worker_reports.append(RunReport.from_dict(json.loads(raw), source))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rs = config.stash.get(SESSION_KEY, None)
    if rs is not None and rs.report is not None:
        write_summary(terminalreporter, rs.report, get_options(config), describe_run(config))
