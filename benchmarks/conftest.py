"""The GPU benchmark suite. Without a GPU it runs on the CPU with the tiny twin and says so at the top."""

from __future__ import annotations

import pytest
from hypothesis import settings

from pytest_rerank_perf.machine.device import is_cuda
from pytest_rerank_perf.plugin.runtime import describe_run, session_device

# The self-check is its own run (`nox -s gpu-selfcheck`, or `pytest benchmarks/selfcheck`): it starts processes.
collect_ignore = ["selfcheck"]

# The invariance examples: 20 on a GPU, where they check the model's own precision; 3 on the CPU fallback, where
# the tiny twin in fp32 shows the check working (~0.3-2 s each); the same for smoke runs (``--hypothesis-profile
# rerank-quick``). No deadline: a forward's time depends on the GPU, and a slow one is not an invariance failure.
settings.register_profile("rerank", max_examples=20, deadline=None)
settings.register_profile("rerank-cpu", max_examples=3, deadline=None)
settings.register_profile("rerank-quick", max_examples=3, deadline=None)
settings.load_profile("rerank")


@pytest.hookimpl(trylast=True)  # after the plugin has read the options (and a fake GPU, if any, is installed)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", None) is None and not is_cuda(session_device(config)):
        settings.load_profile("rerank-cpu")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return describe_run(config)
