"""pytest-benchmark's own ``--benchmark-compare`` beside the plugin: the machine_info the plugin adds is the same
when nothing changed, and a difference against storage outside the current directory warns instead of crashing
pytest (ionelmc/pytest-benchmark#217)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import torch  # noqa: F401  (imported once here: in-process pytester runs drop what they import, torch cannot reload)

from pytest_rerank_perf import plugin


def _machine_info(config: pytest.Config) -> dict[str, Any]:
    info: dict[str, Any] = {}
    plugin.pytest_benchmark_update_machine_info(config, info)
    return info


def test_machine_info_is_the_same_before_and_after_the_model_loads(pytester: pytest.Pytester) -> None:
    """pytest-benchmark computes the machine_info it compares at start-up, before any test: what the plugin adds
    then must equal what it adds when the run saves, or every compare warns (and crashes, see below)."""
    config = pytester.parseconfigure("--rerank-device", "cpu", "--rerank-dtype", "fp32", "-p", "no:cacheprovider")
    at_start = _machine_info(config)
    plugin.rerank_session_of(config).identity = {"key": "twin:custom:0123456789abcdef:fp32:L512"}  # the model loaded
    assert _machine_info(config) == at_start
    assert at_start["rerank_model"] == "twin-tiny fp32 L512"
    assert at_start["rerank_profile_id"].startswith("cpu-")


def test_a_compare_with_storage_elsewhere_warns_instead_of_crashing(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # not under pytester's working directory
    saved = {"machine_info": {"node": "another box", "rerank_model": "twin fp16 L512"}, "benchmarks": []}
    (elsewhere / "0001_saved.json").write_text(json.dumps(saved))
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    warned = rf"machine_info is different: .*\bnode\b.*\brerank_model\b.*\(location: {re.escape(str(elsewhere))}\)"
    with pytest.warns(pytest.PytestWarning, match=warned):  # pytest-benchmark warns while pytest configures
        result = pytester.runpytest("--benchmark-compare", f"--benchmark-storage={elsewhere}", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert result.ret == 0, out
