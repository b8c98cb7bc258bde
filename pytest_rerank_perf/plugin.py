"""The pytest plugin: options, session fixtures and the run description.

Loaded through the ``pytest11`` entry point (or ``-p pytest_rerank_perf.plugin`` where it is not installed).
The plugin is active in every pytest run of an environment that has it installed, so nothing here imports torch
or loads a model until a test asks for a fixture that needs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .baseline import (
    BaselineError,
    BaselineProfile,
    ModelBaseline,
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
from .measure import Cell, CellResult, CellRunner, RoundsPolicy, run_identity
from .model import LoadedModel, load_model, resolve_device, resolve_dtype, resolve_model_spec
from .oom import Boundary
from .options import RerankOptions, add_options, parse_options
from .render import REPORT_FILE, REPORT_VERSION, merge_reports, write_report
from .report import best_batch_sizes, format_gate, format_matrix, gate_markdown
from .scenarios import Scenario, recommend
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


DEVICE_KEY = pytest.StashKey[str]()
PROFILE_KEY = pytest.StashKey[HardwareProfile]()


def xdist_worker_index() -> int | None:
    """N for pytest-xdist worker gwN; None outside xdist (and on the xdist controller)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else None


def pin_worker_device(requested: str, resolved: str, worker: int | None, gpus: int) -> str:
    """Under pytest-xdist, worker gwN measures on cuda:N: one worker per GPU, no GPU shared by two workers.

    An explicit ``--rerank-device cuda:K`` is left alone (the user chose).
    """
    if worker is None or not resolved.startswith("cuda") or requested not in ("auto", "cuda"):
        return resolved
    if worker >= gpus:
        raise UsageError(
            f"pytest-xdist worker gw{worker} has no GPU of its own ({gpus} visible): run with -n {gpus}, one worker "
            "per GPU, or restrict the GPUs with CUDA_VISIBLE_DEVICES"
        )
    return f"cuda:{worker}"


def session_device(config: pytest.Config) -> str:
    """The device this process measures on, resolved once (and pinned per xdist worker)."""
    if DEVICE_KEY not in config.stash:
        requested = get_options(config).device
        try:
            device = resolve_device(requested)
            if device.startswith("cuda"):
                import torch

                device = pin_worker_device(requested, device, xdist_worker_index(), torch.cuda.device_count())
                torch.cuda.set_device(device)  # stray allocations land on this worker's GPU too
        except RerankPerfError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[DEVICE_KEY] = device
    return config.stash[DEVICE_KEY]


def session_profile(config: pytest.Config) -> HardwareProfile:
    """The hardware profile, detected once per session: header, fixtures, JSON and summary all show the same one."""
    if PROFILE_KEY not in config.stash:
        device = session_device(config)
        try:
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
    device = session_device(config)
    try:
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
def rerank_model(pytestconfig: pytest.Config, rerank_options: RerankOptions) -> LoadedModel:
    """The model under test, loaded once per session in the requested precision (on this worker's GPU)."""
    opts = rerank_options
    try:
        device = session_device(pytestconfig)
        model = load_model(opts.model, device, opts.dtype, opts.max_length)
    except (RerankPerfError, pytest.UsageError) as exc:
        pytest.fail(str(exc), pytrace=False)
    _session(pytestconfig).identity = run_identity(model, session_profile(pytestconfig))
    return model


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
    load: dict[str, dict[str, Any]] = field(default_factory=dict)  # concurrent scenario -> batcher load results
    section: ModelBaseline | None = None  # this run's cells as a baseline section (gate input, diff input)
    report: dict[str, Any] | None = None  # everything above as JSON: summary, report folder, benchmark JSON
    worker_reports: list[dict[str, Any]] = field(default_factory=list)  # xdist controller: one per worker

    @property
    def measured(self) -> bool:
        return bool(self.results or self.load or self.oom_boundaries or self.invariance or self.overhead)


SESSION_KEY = pytest.StashKey[RerankSession]()


def _session(config: pytest.Config) -> RerankSession:
    if SESSION_KEY not in config.stash:
        config.stash[SESSION_KEY] = RerankSession()
    return config.stash[SESSION_KEY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``rerank_cell`` over num_pairs x batch_size, num_pairs-major so OOM boundaries are found in order."""
    opts = get_options(metafunc.config)
    if "rerank_load_scenario" in metafunc.fixturenames:
        loaded = [s for s in opts.scenarios if s.concurrent]
        metafunc.parametrize("rerank_load_scenario", loaded, ids=[s.name for s in loaded])
    if "rerank_cell" not in metafunc.fixturenames:
        return
    num_pairs, batch_sizes = opts.matrix(session_device(metafunc.config))
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
    rs = _session(config)
    output_json["rerank"] = rs.report if rs.report is not None else build_report(config, rs)


def build_report(config: pytest.Config, rs: RerankSession) -> dict[str, Any]:
    """Everything this process measured, as JSON: the one source for the summary, the report folder, the
    benchmark JSON's ``rerank`` section, and (under xdist) what a worker hands the controller."""
    opts = get_options(config)
    profile = session_profile(config)
    cells = [r.extra_info() for r in rs.results]
    max_length = (rs.identity or {}).get("max_length", opts.max_length)
    return {
        "report_version": REPORT_VERSION,
        "created": now_utc(),
        "device": session_device(config),
        "profile": profile.to_dict(),
        "profile_summary": profile.summary(),
        "model": rs.identity or {},
        "cells": cells,
        "best_batch_size": {str(n): b for n, b in best_batch_sizes(cells).items()},
        "harness_overhead": rs.overhead,
        "oom_boundaries": {str(k): asdict(b) for k, b in sorted(rs.oom_boundaries.items())},
        "invariance_max_logit_deviation": max(rs.invariance, default=None),
        "load": rs.load,
        "scenarios": [r.to_dict() for r in recommend(opts.scenarios, cells, max_length, rs.load)],
        "gate": rs.gate.to_dict() if rs.gate else None,
        "gate_enforced": rs.gate_enforced,
        "baseline_recorded": rs.recorded,
        "failure": rs.failure,
        "section": rs.section.to_dict() if rs.section and rs.section.cells else None,
    }


def _relative(config: pytest.Config, path: Path) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
    """Record the baseline or run the gate, then build the report: all before pytest-benchmark writes its JSON
    (which then includes it). An xdist worker hands its report to the controller, which merges and writes."""
    config = session.config
    rs = config.stash.get(SESSION_KEY, None)
    if rs is not None and rs.worker_reports:
        rs.report = merge_reports(rs.worker_reports, get_options(config).scenarios)
        _conclude(session, rs)
    elif rs is not None and rs.measured:
        if rs.identity is not None and rs.baseline_path and (rs.results or rs.oom_boundaries):
            _finish(session, rs, rs.baseline_path, rs.identity["key"])
        rs.report = build_report(config, rs)
        if hasattr(config, "workeroutput"):  # an xdist worker: the controller writes the files
            config.workeroutput["rerank_report"] = json.dumps(rs.report, default=str)
        else:
            _conclude(session, rs)
    yield


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist installed it must not be validated
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect each worker's report."""
    raw = getattr(node, "workeroutput", {}).get("rerank_report")
    if raw:
        _session(node.config).worker_reports.append(json.loads(raw))


def _conclude(session: pytest.Session, rs: RerankSession) -> None:
    """Write the report folder and the gate's verdict files; fail the run where the gate or a record says so."""
    config, report = session.config, rs.report or {}
    report_dir = under_root(config, get_options(config).report_dir)
    write_report(report, report_dir)
    if report.get("gate"):
        gate_report = GateReport.from_dict(report["gate"])
        write_atomic(report_dir / "rerank-verdict.json", json.dumps(report["gate"], indent=1) + "\n")
        write_atomic(report_dir / "rerank-summary.md", gate_markdown(gate_report, report["profile_summary"]))
        if gate_report.status == "fail" and report.get("gate_enforced"):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if report.get("failure"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _finish(session: pytest.Session, rs: RerankSession, path: Path, key: str) -> None:
    config, opts = session.config, get_options(session.config)
    profile = session_profile(config)
    booms = {str(k): b.max_batch for k, b in rs.oom_boundaries.items()}
    rs.section = section = section_from_results(rs.results, rs.identity or {}, profile, booms)
    if not section.cells and not section.oom_boundaries:
        return
    shown = _relative(config, path)
    if opts.save_baseline:
        try:
            record(path, key, section, opts.force, opts.append)
            rs.recorded = shown
        except BaselineError as exc:  # nothing is lost: this run's cells go to a side file
            side = path.with_name(f"{path.name}.unsaved-{now_utc().replace(':', '')}-{os.getpid()}")
            write_atomic(side, dumps(BaselineProfile(profile.profile_id, {key: section})))
            rs.failure = f"{exc} This run's cells were saved to {_relative(config, side)}."
        return
    if opts.gate == "off":
        return
    stored = rs.baseline.models.get(key) if rs.baseline else None
    settings = GateSettings.for_device(profile.kind, opts.thresholds, opts.alpha)
    rs.gate = report = gate(stored, section, settings, shown, key)
    rs.gate_enforced = opts.gate == "enforce" or (opts.gate == "auto" and profile.kind == "cuda")
    if report.status == "no-baseline" and opts.require_baseline:
        rs.failure = f"--rerank-require-baseline: {report.message}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rs = _session(config)
    report = rs.report
    if not report:
        return
    tr = terminalreporter
    tr.write_sep("=", "rerank-perf summary")
    for line in describe_run(config):
        tr.write_line(line)
    model = report.get("model") or {}
    if model:
        tr.write_line(f"rerank-perf: model id {model['key']} ({model['parameters']:,} parameters)")
    if report.get("devices"):
        devices = report["devices"]
        tr.write_line(f"rerank-perf: merged from {len(devices)} xdist workers on {', '.join(devices)}")
    tr.write_line("")
    for line in format_matrix(report["cells"]):
        tr.write_line(line)
    o = report.get("harness_overhead")
    if o:
        tr.write_line(
            f"harness overhead vs a bare CrossEncoder.predict loop: {o['overhead'] * 100:+.2f}% "
            f"(median of {o['pairs']} interleaved call pairs, "
            f"IQR {o['iqr'][0] * 100:+.2f}%..{o['iqr'][1] * 100:+.2f}%, "
            f"n={o['num_pairs']} bs={o['batch_size']})"
        )
    for length, b in sorted(report["oom_boundaries"].items(), key=lambda kv: int(kv[0])):
        more = "" if b["first_oom"] else " (the search limit: at least this many)"
        tr.write_line(f"largest batch before OOM at max_length {length}: {b['max_batch']}{more}")
    if report.get("invariance_max_logit_deviation") is not None:
        tr.write_line(f"score invariance: max logit deviation {report['invariance_max_logit_deviation']:.3g}")
    _summarise_load(tr, report)
    _summarise_scenarios(tr, report, get_options(config).scenarios)
    _summarise_baseline(tr, report, get_options(config))


def _summarise_load(tr: Any, report: dict[str, Any]) -> None:
    for name, load in sorted((report.get("load") or {}).items()):
        tr.write_line(
            f"dynamic batcher, scenario {name}: {load['pairs_per_request']} pairs per request, "
            f"max Poisson rate with p99 <= {load['p99_target_s'] * 1e3:.0f} ms:"
        )
        for server, result in load["servers"].items():
            rate = result.get("max_rate")
            tr.write_line(f"    {server:<28} {'none' if rate is None else f'{rate:,.1f} req/s'}")


def _summarise_scenarios(tr: Any, report: dict[str, Any], scenarios: Sequence[Scenario]) -> None:
    recs = report.get("scenarios") or []
    if not recs or not (report["cells"] or report.get("load")):
        return
    tr.write_sep("-", "rerank-perf scenario recommendations")
    limits = {s.name: s for s in scenarios}
    for r in recs:
        s = limits.get(r["scenario"])
        slo = f"p99 <= {s.p99_s * 1e3:.0f} ms" if s and s.p99_s else "no SLO"
        head = f"{r['scenario']:<11} ({s.pairs_text if s else '?'} pairs, {slo}): "
        if r["batch_size"] is None:
            tr.write_line(head + "nothing measured fits. " + "; ".join(r.get("notes") or []))
        elif r.get("server"):
            tr.write_line(head + f"{r['server']} at {r['max_rate']:,.1f} req/s. {r['margin']}")
        else:
            tr.write_line(head + f"batch_size {r['batch_size']} ({r['pairs_per_s']:,.1f} pairs/s). {r['margin']}")


def _summarise_baseline(tr: Any, report: dict[str, Any], opts: RerankOptions) -> None:
    if report.get("baseline_recorded"):
        shown = report["baseline_recorded"]
        tr.write_sep("=", "rerank-perf baseline recorded")
        tr.write_line(f"wrote {shown}; commit it with:")
        tr.write_line(f"    git add {shown} && git commit -m 'Baseline: {shown}'")
    if report.get("gate"):
        gate_report = GateReport.from_dict(report["gate"])
        tr.write_sep("=", f"rerank-perf regression gate: {gate_report.status}")
        for line in format_gate(gate_report):
            tr.write_line(line, red=gate_report.status == "fail" and line.startswith("regression gate"))
        tr.write_line(f"written: {opts.report_dir}/rerank-summary.md, {opts.report_dir}/rerank-verdict.json")
        if gate_report.status == "fail" and not report.get("gate_enforced"):
            tr.write_line(
                "ADVISORY: the gate does not fail CPU-fallback runs by default: a shared CPU drifts by up to ~35% "
                "between runs (README, Detection power). --rerank-gate enforce makes it fail."
            )
    tr.write_line(f"report: {opts.report_dir}/index.md, {opts.report_dir}/{REPORT_FILE} and plots")
    if report.get("failure"):
        tr.write_line(f"rerank-perf: FAILED: {report['failure']}", red=True)
