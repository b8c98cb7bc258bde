"""The GPU benchmark suite. Without a GPU it runs on the CPU with the tiny twin and says so at the top."""

from __future__ import annotations

import pytest

from pytest_rerank_perf.runtime import describe_run


def pytest_report_header(config: pytest.Config) -> list[str]:
    return describe_run(config)
