"""Shared fixtures for the plugin's own tests: one tiny twin per test session, in a private cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rerank_perf.model import LoadedModel, load_model
from pytest_rerank_perf.twin import TINY_TWIN, ensure_twin

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def twin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rerank-cache")


@pytest.fixture(scope="session")
def tiny_twin_dir(twin_cache: Path) -> Path:
    return ensure_twin(TINY_TWIN, twin_cache)


@pytest.fixture(scope="session")
def tiny_model(twin_cache: Path, tiny_twin_dir: Path) -> Iterator[LoadedModel]:
    return load_model("twin-tiny", device="cpu", dtype="fp32", max_length=512, cache_dir=twin_cache)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model: LoadedModel) -> object:
    return tiny_model.tokenizer


@pytest.fixture
def shared_cache_env(monkeypatch: pytest.MonkeyPatch, twin_cache: Path, tiny_twin_dir: Path) -> Path:
    """Point pytester runs at the already-built tiny twin so they do not rebuild it."""
    monkeypatch.setenv("RERANK_PERF_CACHE", str(twin_cache))
    return twin_cache
