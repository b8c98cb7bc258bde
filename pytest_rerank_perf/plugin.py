"""The pytest plugin: options, session fixtures and the run description.

Loaded through the ``pytest11`` entry point (or ``-p pytest_rerank_perf.plugin`` where it is not installed).
The plugin is active in every pytest run of an environment that has it installed, so nothing here imports torch
or loads a model until a test asks for a fixture that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from .errors import RerankPerfError, UsageError
from .hardware import HardwareProfile, detect
from .measure import Cell, CellResult, CellRunner, RoundsPolicy
from .model import LoadedModel, load_model, resolve_device, resolve_dtype, resolve_model_spec
from .options import RerankOptions, add_options, parse_options
from .report import best_batch_sizes, format_matrix
from .workload import Workload, build_workload

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
            config.stash[PROFILE_KEY] = detect(resolve_device(get_options(config).device))
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


# --- the benchmark matrix -----------------------------------------------------------------------------------------


@dataclass
class RerankSession:
    """Everything a run measured, for the terminal summary and the JSON output."""

    results: list[CellResult] = field(default_factory=list)
    workloads: dict[tuple[str, int], Workload] = field(default_factory=dict)
    overhead: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None


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
    rerank_model: LoadedModel, rerank_hardware: HardwareProfile, rerank_options: RerankOptions,
    rerank_session: RerankSession,
) -> CellRunner:  # fmt: skip
    runner = CellRunner(
        rerank_model, rerank_hardware, RoundsPolicy.for_device(rerank_model.device, rerank_options.rounds)
    )
    rerank_session.identity = runner.identity
    return runner


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
    }


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = _session(config)
    if not session.results and session.overhead is None:
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
