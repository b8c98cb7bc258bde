"""Shared fixtures for the plugin's own tests: one tiny twin per test session, in a private cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rerank_perf.backends import CrossEncoderReranker, load_model
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


# A conftest for pytester runs whose test asserts a gate verdict. This 2-core VM has spells of seconds in which it runs
# at half speed or less (seen: one cell of a re-run +76% while its neighbour was -4%), and a one-process baseline
# cannot tell that from a regression. So every forward is padded, by busy-waiting on the wall clock, to a fixed 60 ms,
# far above the tiny twin's 2-25 ms even at half speed: the measured times, the statistics and the verdict stay real,
# but the host's speed no longer reaches them. The injected slowdown stretches the padded forward (its hooks run
# after these), as a slower kernel would.
STEADY_FORWARD_S = 0.060
STEADY_FORWARD = f"""
import time

import pytest

FLOOR_S = {STEADY_FORWARD_S}


@pytest.fixture(scope="session")
def rerank_model(rerank_model):
    started = [0.0]

    def pre(*_):
        started[0] = time.perf_counter()

    def post(*_):
        while time.perf_counter() < started[0] + FLOOR_S:
            pass

    layer = rerank_model.cross_encoder[0]
    layer.register_forward_pre_hook(pre)
    layer.register_forward_hook(post)
    return rerank_model
"""


@pytest.fixture
def steady_forward(pytester: pytest.Pytester) -> float:
    """Pad every forward of this test's pytester runs to a fixed wall-clock time; returns that time in seconds."""
    pytester.makeconftest(STEADY_FORWARD)
    return STEADY_FORWARD_S


@pytest.fixture
def steady_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record-then-compare runs within one test are one machine: a CPU slowed for a moment by another process must
    not make the fingerprint call it another one (the fingerprint's own tests are in test_fail_closed.py)."""
    from pytest_rerank_perf import fingerprint

    steady = fingerprint.Fingerprint("fp32 512x512x512 on cpu", 1.0e11, 0.01)
    monkeypatch.setattr(fingerprint, "measure", lambda device, gpu=None: steady)


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
