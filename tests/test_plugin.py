from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rerank_perf.errors import UsageError
from pytest_rerank_perf.plugin.runtime import pin_worker_device

USES_MODEL = """
def test_model(rerank_model, rerank_hardware, rerank_options):
    assert rerank_model.identity.source == "twin"
    assert rerank_model.identity.name == "bge-reranker-v2-m3-tiny-twin"
    assert rerank_hardware.kind == "cpu"
    scores = rerank_model.cross_encoder.predict([("a", "b"), ("model", "data")])
    assert len(scores) == 2
"""


def test_plugin_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*rerank-perf*", "*--rerank-model=*", "*--rerank-batch-sizes=*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rerank-batch-sizes", "0,8"], "--rerank-batch-sizes 0: must be at least 1"),
        (["--rerank-batch-sizes", "-4"], "--rerank-batch-sizes -4: must be at least 1"),
        (["--rerank-batch-sizes", "1.5"], "--rerank-batch-sizes '1.5': expected an integer"),
        (["--rerank-batch-sizes", "1,,2"], "empty entry"),
        (["--rerank-batch-sizes", ","], "empty entry"),
        (["--rerank-num-pairs", "ten"], "--rerank-num-pairs 'ten': expected an integer"),
        (["--rerank-max-length", "9000"], "at most 8192"),
        (["--rerank-dtype", "fp8"], "use auto, fp32, fp16 or bf16"),
        (["--rerank-device", "tpu"], "use auto, cpu, cuda or cuda:N"),
        (["--rerank-pair-tokens", "gauss:3"], "--rerank-pair-tokens: length distribution 'gauss:3' not understood"),
        (["--rerank-backend", "onnx"], "--rerank-backend 'onnx': choose one of sentence-transformers"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nrerank_num_pairs = 10,0\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rerank-num-pairs 0: must be at least 1" in result.stderr.str()


def test_ini_values_are_read(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nrerank_batch_sizes = 32, 4,4\nrerank_max_length = 256\n")
    pytester.makepyfile(
        """
        def test_opts(rerank_options):
            assert rerank_options.batch_sizes == (4, 32)
            assert rerank_options.max_length == 256
            assert rerank_options.num_pairs is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_command_line_beats_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nrerank_batch_sizes = 32\n")
    pytester.makepyfile("def test_opts(rerank_options):\n    assert rerank_options.batch_sizes == (2,)\n")
    pytester.runpytest("--rerank-batch-sizes", "2").assert_outcomes(passed=1)


def test_model_fixture_loads_the_tiny_twin_on_cpu(pytester: pytest.Pytester, shared_cache_env: Path) -> None:
    pytester.makepyfile(USES_MODEL)
    pytester.runpytest("--rerank-device", "cpu").assert_outcomes(passed=1)


def test_missing_model_fails_with_the_fix_not_a_traceback(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile("def test_m(rerank_model):\n    pass\n\n\ndef test_n(rerank_model):\n    pass\n")
    result = pytester.runpytest("--rerank-model", str(tmp_path / "no-such-model"), "--rerank-device", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*is not a directory*", "*--rerank-model twin*"])
    assert result.stdout.str().count("is not a directory") == 1  # once, not once per test
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("requested", "resolved", "worker", "gpus", "expected"),
    [
        ("auto", "cuda:0", None, 4, "cuda:0"),  # not under xdist
        ("auto", "cuda:0", 2, 4, "cuda:2"),  # worker gw2 gets the third GPU
        ("cuda", "cuda:0", 1, 2, "cuda:1"),
        ("cuda:3", "cuda:3", 1, 4, "cuda:3"),  # an explicit choice is kept
        ("auto", "cpu", 1, 0, "cpu"),
    ],
)
def test_xdist_workers_are_pinned_one_per_gpu(
    requested: str, resolved: str, worker: int | None, gpus: int, expected: str
) -> None:
    assert pin_worker_device(requested, resolved, worker, gpus) == expected


def test_more_xdist_workers_than_gpus_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"gw2 has no GPU of its own \(2 visible\): run with -n 2"):
        pin_worker_device("auto", "cuda:0", 2, 2)


def test_the_plugin_loads_where_pytest_xdist_is_absent(pytester: pytest.Pytester) -> None:
    """Its xdist hook is optional: an environment without xdist must not fail at start-up."""
    pytester.makepyfile("def test_nothing():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    assert result.ret == 0, result.stderr.str()
