"""The pytest plugin: options, session fixtures and the run description.

Loaded through the ``pytest11`` entry point (or ``-p pytest_rerank_perf.plugin`` where it is not installed).
The plugin is active in every pytest run of an environment that has it installed, so nothing here imports torch
or loads a model until a test asks for a fixture that needs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .baseline import (
    BaselineError,
    BaselineProfile,
    cell_key,
    clash_error,
    clashes,
    dumps,
    load_profile,
    now_utc,
    profile_path,
    record,
    section_from_results,
    write_atomic,
)
from .compare import GateReport, GateSettings, gate
from .errors import RerankPerfError, UsageError
from .hardware import HardwareProfile, detect
from .invariance import InvarianceReport, check_invariance
from .measure import Cell, CellResult, CellRunner, RoundsPolicy
from .model import LoadedModel, load_model, resolve_device, resolve_dtype, resolve_model_spec
from .oom import Boundary
from .options import RerankOptions, add_options, parse_options
from .report import best_batch_sizes, format_gate, format_matrix, gate_markdown
from .workload import Pair, Workload, build_workload

OPTIONS_KEY = pytest.StashKey[RerankOptions]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[OPTIONS_KEY] = parse_options(config)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def get_options(config: pytest.Config) -> RerankOptions:
    return config.stash[OPTIONS_KEY]


PROFILE_KEY = pytest.StashKey[HardwareProfile]()


def session_profile(config: pytest.Config) -> HardwareProfile:
    """The hardware profile, detected once per session: header, fixtures, JSON and summary all show the same one."""
    if PROFILE_KEY not in config.stash:
        try:
            device = resolve_device(get_options(config).device)
            if device == "cpu":  # before detection: the thread count is part of a CPU profile id
                import torch

                torch.set_num_threads(get_options(config).cpu_threads)
            config.stash[PROFILE_KEY] = detect(device)
        except RerankPerfError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[PROFILE_KEY]


def describe_run(config: pytest.Config) -> list[str]:
    """Header lines for a benchmark run: what will be measured, and a loud label on the CPU fallback."""
    opts = get_options(config)
    try:
        device = resolve_device(opts.device)
        dtype = resolve_dtype(opts.dtype, device)
    except RerankPerfError as exc:
        raise pytest.UsageError(str(exc)) from None
    profile = session_profile(config)
    model = resolve_model_spec(opts.model, device)
    lines = [
        f"rerank-perf: profile {profile.summary()}",
        f"rerank-perf: model {model} on {device}, {dtype}, max_length {opts.max_length}",
    ]
    lines += [f"rerank-perf: note: {note}" for note in profile.notes]
    if not device.startswith("cuda"):
        lines.append(
            "rerank-perf: *** CPU FALLBACK: no GPU here. Measuring on the CPU"
            + (" with the TINY TWIN (2 layers x 64 hidden)" if model == "twin-tiny" else "")
            + ". These figures show the harness works; they say nothing about GPU performance. ***"
        )
    return lines


@pytest.fixture(scope="session")
def rerank_options(pytestconfig: pytest.Config) -> RerankOptions:
    return get_options(pytestconfig)


@pytest.fixture(scope="session")
def rerank_hardware(pytestconfig: pytest.Config) -> HardwareProfile:
    try:
        return session_profile(pytestconfig)
    except pytest.UsageError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rerank_model(rerank_options: RerankOptions) -> LoadedModel:
    """The model under test, loaded once per session in the requested precision."""
    opts = rerank_options
    try:
        return load_model(opts.model, opts.device, opts.dtype, opts.max_length)
    except RerankPerfError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rerank_invariance(rerank_model: LoadedModel) -> Callable[..., InvarianceReport]:
    """``rerank_invariance(pairs, batch_sizes=None, long_neighbour=None) -> InvarianceReport`` on the session's
    model and precision. Session-scoped, so it can be used inside hypothesis ``@given`` tests."""

    def check(
        pairs: Sequence[Pair], batch_sizes: Sequence[int] | None = None, long_neighbour: Pair | None = None
    ) -> InvarianceReport:
        return check_invariance(
            rerank_model.cross_encoder, pairs, rerank_model.identity.dtype, batch_sizes, long_neighbour=long_neighbour
        )

    return check


# --- the benchmark matrix -----------------------------------------------------------------------------------------


@dataclass
class RerankSession:
    """Everything a run measured, for the terminal summary and the JSON output."""

    results: list[CellResult] = field(default_factory=list)
    workloads: dict[tuple[str, int], Workload] = field(default_factory=dict)
    overhead: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    baseline_path: Path | None = None
    baseline: BaselineProfile | None = None  # read (and validated) before the first cell runs
    gate: GateReport | None = None
    recorded: str | None = None  # what --rerank-save-baseline wrote, for the summary
    failure: str | None = None  # why the run fails after its tests passed (a refused or failed baseline write)
    oom_boundaries: dict[int, Boundary] = field(default_factory=dict)  # max_length -> boundary
    invariance: list[float] = field(default_factory=list)  # max logit deviation per checked example
    gate_enforced: bool = False  # whether a regression fails the run (--rerank-gate)


SESSION_KEY = pytest.StashKey[RerankSession]()


def _session(config: pytest.Config) -> RerankSession:
    if SESSION_KEY not in config.stash:
        config.stash[SESSION_KEY] = RerankSession()
    return config.stash[SESSION_KEY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``rerank_cell`` over num_pairs x batch_size, num_pairs-major so OOM boundaries are found in order."""
    if "rerank_cell" not in metafunc.fixturenames:
        return
    opts = get_options(metafunc.config)
    try:
        device = resolve_device(opts.device)
    except RerankPerfError as exc:
        raise pytest.UsageError(str(exc)) from None
    num_pairs, batch_sizes = opts.matrix(device)
    cells = [Cell(n, b) for n in num_pairs for b in batch_sizes]
    metafunc.parametrize("rerank_cell", cells, ids=[c.id for c in cells])


@pytest.fixture(scope="session")
def rerank_session(pytestconfig: pytest.Config) -> RerankSession:
    return _session(pytestconfig)


@pytest.fixture(scope="session")
def rerank_runner(
    request: pytest.FixtureRequest, rerank_model: LoadedModel, rerank_hardware: HardwareProfile,
    rerank_options: RerankOptions, rerank_session: RerankSession,
) -> CellRunner:  # fmt: skip
    opts = rerank_options
    policy = RoundsPolicy.for_device(rerank_model.device, opts.rounds, recording=opts.save_baseline)
    runner = CellRunner(rerank_model, rerank_hardware, policy, inject_slowdown=opts.inject_slowdown)
    rerank_session.identity = runner.identity
    _open_baseline(request, rerank_session, rerank_options, rerank_hardware.profile_id, runner.identity["key"])
    return runner


def under_root(config: pytest.Config, option_value: str) -> Path:
    """A directory option: absolute as given, relative to the rootdir otherwise."""
    path = Path(option_value)
    return path if path.is_absolute() else config.rootpath / path


def baseline_path(config: pytest.Config, profile_id: str) -> Path:
    return profile_path(under_root(config, get_options(config).baseline_dir), profile_id)


def _planned_cells(session: pytest.Session, opts: RerankOptions) -> list[str]:
    spec = opts.workload_spec().id
    specs = [getattr(item, "callspec", None) for item in session.items]
    cells = [s.params["rerank_cell"] for s in specs if s is not None and "rerank_cell" in s.params]
    return [cell_key(f"{spec}-n{c.num_pairs}", c.batch_size) for c in cells]


def _open_baseline(
    request: pytest.FixtureRequest, rs: RerankSession, opts: RerankOptions, profile_id: str, key: str
) -> None:
    """Read the baseline before anything is measured: a corrupt file, or a record that would overwrite cells
    without --rerank-force, stops the run now instead of after minutes of measuring."""
    path = baseline_path(request.config, profile_id)
    try:
        rs.baseline = load_profile(path)
        found = clashes(rs.baseline, key, _planned_cells(request.session, opts))
        if opts.save_baseline and found and not (opts.force or opts.append):
            raise clash_error(key, found)
    except BaselineError as exc:
        pytest.exit(f"rerank-perf: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    rs.baseline_path = path


@pytest.fixture
def rerank_workload(
    rerank_cell: Cell, rerank_model: LoadedModel, rerank_options: RerankOptions, rerank_session: RerankSession
) -> Workload:
    """The seeded token-length workload for this cell, built once per (spec, num_pairs) and session."""
    spec = rerank_options.workload_spec()
    key = (spec.id, rerank_cell.num_pairs)
    if key not in rerank_session.workloads:
        try:
            rerank_session.workloads[key] = build_workload(spec, rerank_model.tokenizer, rerank_cell.num_pairs)
        except RerankPerfError as exc:
            pytest.fail(str(exc), pytrace=False)
    return rerank_session.workloads[key]


@pytest.fixture
def rerank_bench(benchmark: Any, rerank_runner: CellRunner, rerank_session: RerankSession) -> Any:
    """``rerank_bench(workload, batch_size) -> CellResult``: one matrix cell through pytest-benchmark.

    An out-of-memory cell is recorded and reported as skipped with the reason (never a pass), and so are larger
    batch sizes of the same workload after it.
    """

    def run(workload: Workload, batch_size: int) -> CellResult:
        benchmark.group = f"rerank n={len(workload)} {workload.id}"
        result = rerank_runner.run(benchmark, workload, batch_size)
        rerank_session.results.append(result)
        benchmark.extra_info.update(result.extra_info())
        if result.status != "ok":
            pytest.skip(f"{result.status.upper()}: {result.reason}")
        return result

    return run


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    try:
        machine_info["rerank_hardware"] = session_profile(config).to_dict()
    except pytest.UsageError as exc:
        machine_info["rerank_hardware"] = {"error": str(exc)}


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    session = _session(config)
    output_json["rerank"] = {
        "model": session.identity,
        "cells": [r.extra_info() for r in session.results],
        "best_batch_size": {str(n): b for n, b in best_batch_sizes(session.results).items()},
        "harness_overhead": session.overhead,
        "oom_boundaries": {str(k): asdict(b) for k, b in sorted(session.oom_boundaries.items())},
        "invariance_max_logit_deviation": max(session.invariance, default=None),
        "gate": session.gate.to_dict() if session.gate else None,
        "baseline_recorded": session.recorded,
    }


def _relative(config: pytest.Config, path: Path) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
    """Record the baseline or run the gate, before pytest-benchmark writes its JSON (which then includes it)."""
    rs = session.config.stash.get(SESSION_KEY, None)
    if rs is not None and (rs.results or rs.oom_boundaries) and rs.identity is not None and rs.baseline_path:
        _finish(session, rs, rs.baseline_path, rs.identity["key"])
    yield


def _finish(session: pytest.Session, rs: RerankSession, path: Path, key: str) -> None:
    config, opts = session.config, get_options(session.config)
    profile = session_profile(config)
    booms = {str(k): b.max_batch for k, b in rs.oom_boundaries.items()}
    section = section_from_results(rs.results, rs.identity or {}, profile, booms)
    if not section.cells and not section.oom_boundaries:
        return
    shown = _relative(config, path)
    if opts.save_baseline:
        try:
            record(path, key, section, opts.force, opts.append)
            rs.recorded = shown
        except BaselineError as exc:  # nothing is lost: this run's cells go to a side file
            side = path.with_name(f"{path.name}.unsaved-{now_utc().replace(':', '')}")
            write_atomic(side, dumps(BaselineProfile(profile.profile_id, {key: section})))
            rs.failure = f"{exc} This run's cells were saved to {_relative(config, side)}."
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    if opts.gate == "off":
        return
    stored = rs.baseline.models.get(key) if rs.baseline else None
    settings = GateSettings.for_device(profile.kind, opts.thresholds, opts.alpha)
    rs.gate = report = gate(stored, section, settings, shown, key)
    report_dir = under_root(config, opts.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(report_dir / "rerank-verdict.json", json.dumps(report.to_dict(), indent=1) + "\n")
    write_atomic(report_dir / "rerank-summary.md", gate_markdown(report, profile.summary()))
    rs.gate_enforced = opts.gate == "enforce" or (opts.gate == "auto" and profile.kind == "cuda")
    if report.status == "fail" and rs.gate_enforced:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif report.status == "no-baseline" and opts.require_baseline:
        rs.failure = f"--rerank-require-baseline: {report.message}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = _session(config)
    if not session.results and session.overhead is None and not session.oom_boundaries and not session.invariance:
        return
    tr = terminalreporter
    tr.write_sep("=", "rerank-perf summary")
    for line in describe_run(config):
        tr.write_line(line)
    if session.identity:
        tr.write_line(
            f"rerank-perf: model id {session.identity['key']} ({session.identity['parameters']:,} parameters)"
        )
    tr.write_line("")
    for line in format_matrix(session.results):
        tr.write_line(line)
    if session.overhead:
        o = session.overhead
        tr.write_line(
            f"harness overhead vs a bare CrossEncoder.predict loop: {o['overhead'] * 100:+.2f}% "
            f"(median of {o['pairs']} interleaved call pairs, "
            f"IQR {o['iqr'][0] * 100:+.2f}%..{o['iqr'][1] * 100:+.2f}%, "
            f"n={o['num_pairs']} bs={o['batch_size']})"
        )
    for length, b in sorted(session.oom_boundaries.items()):
        more = "" if b.first_oom else " (the search limit: at least this many)"
        tr.write_line(f"largest batch before OOM at max_length {length}: {b.max_batch}{more}")
    if session.invariance:
        tr.write_line(
            f"score invariance: {len(session.invariance)} examples, max logit deviation {max(session.invariance):.3g}"
        )
    _summarise_baseline(tr, session, get_options(config))


def _summarise_baseline(tr: Any, rs: RerankSession, opts: RerankOptions) -> None:
    if rs.recorded:
        tr.write_sep("=", "rerank-perf baseline recorded")
        tr.write_line(f"wrote {rs.recorded}; commit it with:")
        tr.write_line(f"    git add {rs.recorded} && git commit -m 'Baseline: {rs.recorded}'")
    if rs.gate:
        tr.write_sep("=", f"rerank-perf regression gate: {rs.gate.status}")
        for line in format_gate(rs.gate):
            tr.write_line(line, red=rs.gate.status == "fail" and line.startswith("regression gate"))
        tr.write_line(f"written: {opts.report_dir}/rerank-summary.md, {opts.report_dir}/rerank-verdict.json")
        if rs.gate.status == "fail" and not rs.gate_enforced:
            tr.write_line(
                "ADVISORY: the gate does not fail CPU-fallback runs by default: a shared CPU drifts by up to ~35% "
                "between runs (README, Detection power). --rerank-gate enforce makes it fail."
            )
    if rs.failure:
        tr.write_line(f"rerank-perf: FAILED: {rs.failure}", red=True)
