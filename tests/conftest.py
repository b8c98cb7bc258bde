"""Shared fixtures for the plugin's own tests: one tiny twin per test session, in a private cache."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from pytest_rerank_perf.backends import CrossEncoderReranker, load_model
from pytest_rerank_perf.backends.twin import TINY_TWIN, ensure_twin
from pytest_rerank_perf.fakegpu import clock

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process (and, through the environment, per process it starts): two xdist workers
    on two cores, each with two spinning OpenMP threads, run the tiny twin 3-5x slower than one thread each. And
    deterministic hypothesis settings."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    # the same examples on every run, no deadline a busy host could miss: a property test passes or fails on the code
    settings.register_profile("rerank-tests", deadline=None, derandomize=True, database=None)
    settings.load_profile("rerank-tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (the full-size twin build, then the end-to-end pytester runs): under xdist they start
    at once and the short unit tests fill in around them, instead of a long one starting last on one worker while
    the other idles."""
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, "pytester" not in item.fixturenames))


MEASURING = {"pytester", "tiny_model", "twin_cache"}


@pytest.fixture(autouse=True)
def _isolated_runs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What an in-process pytester run inherits from this process is reset around every test: the xdist worker's
    variables (an inner run would think it is worker gwN and pin itself to fake GPU N), and the hypothesis profile
    (an inner run's ``--hypothesis-profile`` would otherwise hold for every later test of this worker).

    ``device.free_memory`` calls ``gc.collect()`` before each cell and after each out-of-memory, and an inner run's
    pytest once more (its check for unraisable exceptions); in this process each call scans every object of torch,
    transformers and the earlier tests: 0.3 s a call, most of a small run. Before a test that measures (a pytester
    run, the tiny twin) the garbage is collected and what is still alive is frozen (``gc.freeze``), so those
    collections scan the test's own objects only."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    if MEASURING & set(request.fixturenames):
        gc.collect()
        gc.freeze()
    profile = settings.get_current_profile_name()
    yield
    settings.load_profile(profile)


@pytest.fixture(scope="session")
def twin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rerank-cache")


@pytest.fixture(scope="session")
def tiny_twin_dir(twin_cache: Path) -> Path:
    return ensure_twin(TINY_TWIN, twin_cache)


@pytest.fixture(scope="session")
def tiny_model(twin_cache: Path, tiny_twin_dir: Path) -> Iterator[CrossEncoderReranker]:
    return load_model("twin-tiny", device="cpu", dtype="fp32", max_length=512, cache_dir=twin_cache)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model: CrossEncoderReranker) -> object:
    return tiny_model.tokenizer


@pytest.fixture
def shared_cache_env(monkeypatch: pytest.MonkeyPatch, twin_cache: Path, tiny_twin_dir: Path) -> Path:
    """Point pytester runs at the already-built tiny twin so they do not rebuild it."""
    monkeypatch.setenv("RERANK_PERF_CACHE", str(twin_cache))
    return twin_cache


CLOCK_PLUGIN = ("-p", "pytest_rerank_perf.fakegpu.clock")


@pytest.fixture
def virtual_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[str, ...]]:
    """Time this test's pytest runs on a virtual clock (``pytest_rerank_perf/fakegpu/clock.py``): each forward costs a
    seeded, deterministic time, so the statistics and the verdicts are the same on any host, however busy. Call it
    with ``ForwardCost``'s fields (``noise``, ``drift``, ``seed``, ...) for the runs that follow; it returns the
    arguments that load the plugin (the pooled processes inherit the settings from the environment)."""

    def use(**cost: float) -> tuple[str, ...]:
        monkeypatch.setenv(clock.ENV, json.dumps(cost))
        return CLOCK_PLUGIN

    return use


# The matrix benchmark as a pytester run measures it: one cell per test, the plugin's own fixtures.
MATRIX_BENCH = """
def test_throughput(rerank_bench, rerank_cell, rerank_workload):
    rerank_bench(rerank_workload, rerank_cell.batch_size)
"""


@pytest.fixture
def bench(pytester: pytest.Pytester, shared_cache_env: Path) -> pytest.Pytester:
    """A pytester folder holding the matrix benchmark (``test_bench.py``), the tiny twin already built."""
    pytester.makepyfile(test_bench=MATRIX_BENCH)
    return pytester
