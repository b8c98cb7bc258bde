"""The fixtures a benchmark uses: the model, the hardware, the matrix cell and its workload, the measuring call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ..backends import LOADERS, Pair, Reranker
from ..backends.variants import REFERENCE, build_variant
from ..errors import RerankPerfError
from ..machine.hardware import HardwareProfile
from ..measurements.cell import Cell, CellResult, RoundsPolicy
from ..measurements.data_profile import DataProfiles
from ..measurements.invariance import InvarianceReport, check_invariance
from ..measurements.matrix import CellRunner, run_identity
from ..measurements.variant_check import ReferenceScores
from ..workloads.workload import Workload
from .options import RerankOptions
from .runtime import get_options, session_device, session_profile
from .session import RerankSession
from .workload_source import build_cell_workload

SESSION_KEY = pytest.StashKey[RerankSession]()


def rerank_session_of(config: pytest.Config) -> RerankSession:
    if SESSION_KEY not in config.stash:
        config.stash[SESSION_KEY] = RerankSession(get_options(config), config.rootpath)
    return config.stash[SESSION_KEY]


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
def rerank_session(pytestconfig: pytest.Config) -> RerankSession:
    """This process's results: hand a measurement's result over with ``rerank_session.add(result)``."""
    return rerank_session_of(pytestconfig)


@pytest.fixture(scope="session")
def rerank_model(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config, rerank_options: RerankOptions
) -> Reranker:
    """The model under test (a ``Reranker``), loaded once per session in the requested precision (on this worker's
    GPU). The sentence-transformers backend's ``.cross_encoder`` is the ``CrossEncoder`` itself.

    A model that cannot be had ends the run at once, with its one message and pytest's usage-error exit code:
    every test after would fail the same way."""
    opts = rerank_options
    try:
        device = session_device(pytestconfig)
        model = LOADERS[opts.backend](opts.model, device, opts.dtype, opts.max_length)
    except (RerankPerfError, pytest.UsageError) as exc:
        message = f"rerank-perf: {exc}"
        if hasattr(pytestconfig, "workerinput"):  # an xdist worker: its controller stops on this, not crashes
            request.session.shouldstop = message
        pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)
    rerank_session_of(pytestconfig).identity = run_identity(model, session_profile(pytestconfig))
    return model


@pytest.fixture(scope="session")
def rerank_invariance(rerank_model: Reranker) -> Callable[..., InvarianceReport]:
    """``rerank_invariance(pairs, batch_sizes=None, long_neighbour=None) -> InvarianceReport`` on the session's
    model and precision. Session-scoped, so it can be used inside hypothesis ``@given`` tests."""

    def check(
        pairs: Sequence[Pair], batch_sizes: Sequence[int] | None = None, long_neighbour: Pair | None = None
    ) -> InvarianceReport:
        return check_invariance(rerank_model, pairs, batch_sizes, long_neighbour=long_neighbour)

    return check


@pytest.fixture(scope="session")
def rerank_runner(
    request: pytest.FixtureRequest,
    rerank_model: Reranker,
    rerank_hardware: HardwareProfile,
    rerank_options: RerankOptions,
    rerank_session: RerankSession,
) -> CellRunner:
    opts = rerank_options
    policy = RoundsPolicy.for_device(rerank_model.device, opts.rounds, recording=opts.save_baseline)
    try:
        runner = CellRunner(rerank_model, rerank_hardware, policy, inject_slowdown=opts.inject_slowdown)
    except RerankPerfError as exc:
        pytest.fail(str(exc), pytrace=False)
    rerank_session.identity = runner.identity  # also where a conftest replaced ``rerank_model``
    rerank_session.open_baseline(request.session.items, rerank_hardware.profile_id, runner.identity["key"])
    return runner


class VariantRunners:
    """One ``CellRunner`` per variant, built on first use over the reference's model; ``predict``'s is the
    reference runner itself. Variant runners check their scores against the reference before measuring."""

    def __init__(self, reference: CellRunner, inject_slowdown: float) -> None:
        self.reference = reference
        self.inject_slowdown = inject_slowdown
        self.scores = ReferenceScores(reference.model)  # predict's answers, computed once for every variant
        self.runners: dict[str, CellRunner] = {REFERENCE: reference}

    def __call__(self, variant: str) -> CellRunner:
        if variant not in self.runners:
            ref = self.reference
            model = build_variant(ref.model, variant)
            self.runners[variant] = CellRunner(model, ref.profile, ref.policy, self.inject_slowdown, self.scores)
        return self.runners[variant]


@pytest.fixture(scope="session")
def rerank_runners(rerank_runner: CellRunner, rerank_options: RerankOptions) -> VariantRunners:
    """``rerank_runners(variant) -> CellRunner``: the runner of a ``--rerank-variants`` configuration."""
    return VariantRunners(rerank_runner, rerank_options.inject_slowdown)


@pytest.fixture
def rerank_cell(request: pytest.FixtureRequest) -> Cell:
    """This matrix cell (num_pairs, batch_size, workload label), from the plugin's plain-JSON parameter."""
    return Cell.of(request.param)


@pytest.fixture
def rerank_workload(
    pytestconfig: pytest.Config,
    rerank_cell: Cell,
    rerank_model: Reranker,
    rerank_options: RerankOptions,
    rerank_session: RerankSession,
) -> Workload:
    """This cell's workload: the seeded token-length recipe, or ``--rerank-workload``'s file; built once per
    (source, num_pairs) and session, its data profile handed to the session."""
    key = rerank_options.workload_id(rerank_cell.num_pairs)
    if key not in rerank_session.workloads:
        try:
            workload, profile = build_cell_workload(
                rerank_options, rerank_model, rerank_cell.num_pairs, rerank_session.data_lengths
            )
        except RerankPerfError as exc:
            pytest.fail(str(exc), pytrace=False)
        batch_sizes = rerank_options.matrix(session_device(pytestconfig))[1]
        padding = {b: workload.batch_stats(b, rerank_model.identity.max_length).padding_fraction for b in batch_sizes}
        rerank_session.add(DataProfiles({profile.data_id: profile.with_padding(workload.num_pairs, padding)}))
        rerank_session.workloads[key] = workload
    return rerank_session.workloads[key]


@pytest.fixture
def rerank_bench(
    request: pytest.FixtureRequest, benchmark: Any, rerank_runners: VariantRunners, rerank_session: RerankSession
) -> Any:
    """``rerank_bench(workload, batch_size, variant=None) -> CellResult``: one matrix cell through pytest-benchmark
    (``variant`` None: this test's ``rerank_cell`` variant, or ``predict`` in a test without one).

    An out-of-memory cell is recorded and reported as skipped with the reason (never a pass), and so are larger
    batch sizes of the same workload after it. A variant whose scores differ from predict's fails its test.
    """

    callspec = getattr(request.node, "callspec", None)
    param = callspec.params.get("rerank_cell") if callspec is not None else None
    own = Cell.of(param).variant if param is not None else REFERENCE

    def run(workload: Workload, batch_size: int, variant: str | None = None) -> CellResult:
        try:
            runner = rerank_runners(variant or own)
        except RerankPerfError as exc:
            pytest.fail(str(exc), pytrace=False)
        benchmark.group = f"rerank n={workload.num_pairs} {workload.id}"
        result = runner.run(benchmark, workload, batch_size)
        rerank_session.add_cell(result)
        benchmark.extra_info.update(result.to_dict())
        if result.status == "rejected":
            pytest.fail(f"WRONG SCORES: {result.reason}", pytrace=False)
        if result.status != "ok":
            pytest.skip(f"{result.status.upper()}: {result.reason}")
        return result

    return run
