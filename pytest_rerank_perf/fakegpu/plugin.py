"""``-p pytest_rerank_perf.fakegpu.plugin``: run a pytest session (and each xdist worker) on a fake GPU.

Settings come as JSON in ``RERANK_PERF_FAKE_GPU``, the keyword arguments of ``FakeGpu``, e.g.
``{"gpus": ["h100", "h100"], "budget_bytes": 2147483648}``. Every backend's loader is wrapped so the models it
loads allocate on the fake device.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from ..backends import LOADERS
from . import FakeGpu

_ORIGINAL = dict(LOADERS)
_KEY = pytest.StashKey[FakeGpu]()


def fake_gpu_of(config: pytest.Config) -> FakeGpu:
    """The fake this session runs on (a test's conftest can throttle it, or add other processes)."""
    return config.stash[_KEY]


def _attached(gpu: FakeGpu, load: Any) -> Any:
    def load_on_fake(*args: Any, **kwargs: Any) -> Any:
        return gpu.attach(load(*args, **kwargs))

    return load_on_fake


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    gpu = FakeGpu(**json.loads(os.environ.get("RERANK_PERF_FAKE_GPU") or "{}"))
    gpu.install()
    config.stash[_KEY] = gpu
    for name, load in _ORIGINAL.items():
        LOADERS[name] = _attached(gpu, load)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    FakeGpu.uninstall()
    LOADERS.update(_ORIGINAL)
