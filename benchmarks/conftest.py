"""The GPU benchmark suite. Without a GPU it runs on the CPU with the tiny twin and says so at the top."""

from __future__ import annotations

import pytest
from hypothesis import settings

from pytest_rerank_perf.runtime import describe_run

# The self-check is its own run (`nox -s gpu-selfcheck`, or `pytest benchmarks/selfcheck`): it starts processes.
collect_ignore = ["selfcheck"]

# The invariance examples: 20 by default; a quicker profile for smoke runs (``--hypothesis-profile rerank-quick``).
# No deadline: a forward's time depends on the GPU, and a slow one is not an invariance failure.
settings.register_profile("rerank", max_examples=20, deadline=None)
settings.register_profile("rerank-quick", max_examples=3, deadline=None)
settings.load_profile("rerank")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return describe_run(config)
