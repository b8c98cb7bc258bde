"""Shared fixtures for the plugin's own tests: one tiny twin per test session, in a private cache."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_rerank_perf.backends import CrossEncoderReranker, load_model
from pytest_rerank_perf.fakegpu import clock
from pytest_rerank_perf.twin import TINY_TWIN, ensure_twin

pytest_plugins = ["pytester"]


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
