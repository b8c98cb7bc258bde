"""The GPU suite (``benchmarks/``) end to end on a fake GPU: every CUDA and NVML branch runs in CI.

A tiny matrix of the tiny twin in fp16 on one fake H100, then on two with ``-n 2``; a baseline recorded there
and an enforced gate against it that catches a memory regression (VRAM and the out-of-memory boundary) and
refuses to judge a throttled GPU. Cells are timed on a virtual clock (``conftest.virtual_clock``): the host's
speed never reaches a figure the gate compares.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.fakegpu import GiB

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MATRIX = (
    "-p",
    "pytest_rerank_perf.fakegpu.plugin",
    "--rerank-model",
    "twin-tiny",
    "--rerank-num-pairs",
    "8",
    "--rerank-batch-sizes",
    "1,4",
    "--rerank-pair-tokens",
    "32",
    "--rerank-rounds",
    "3",
    "--hypothesis-profile",
    "rerank-e2e",
    "-o",
    "rerank_scenarios=concurrent: pairs=2",  # the load benchmark's requests: 2 pairs, not 10
)
BUDGET = GiB  # with 256 KiB per token: 31 pairs of 128 tokens fit, 3 of 1024 (small batches: cheap probes)
PER_TOKEN = 256 * 2**10
# What the suite's coverage needs, not its precision: the load and router benchmarks at one configuration, a
# bounded rate search (two points), few requests; the overhead over 4 call pairs; one invariance example.
QUICK = """
import dataclasses

from hypothesis import settings

from pytest_rerank_perf.measurements import load, overhead, router

settings.register_profile("rerank-e2e", max_examples=1, deadline=None, derandomize=True, database=None)
_patch = pytest.MonkeyPatch()  # undone when the run ends: the modules outlive this in-process run


def pytest_configure(config):
    find = load.find_max_rate
    two_points = lambda measure, p99, start, **_: find(measure, p99, start, start * 2, start / 2, refine_steps=0)
    _patch.setattr(load, "find_max_rate", two_points)  # the start rate, then one step up or down
    # 1 s of arrivals a point, as on the CPU: the benchmark checks the generator kept within 5% of its rate, and a
    # shorter point lets a hiccup of the shared host's scheduler break that
    quick = dataclasses.replace(load.GPU_LOAD, point_s=1.0, max_batches=(8,), concurrency=(1, 4))
    _patch.setattr(load, "load_sizing", lambda device: quick)
    _patch.setattr(router, "ROUTER_MAX_BATCH", (32,))
    _patch.setattr(router, "ROUTER_REQUESTS", 50)
    _patch.setattr(overhead, "PAIRS", 4)


def pytest_unconfigure(config):
    _patch.undo()
"""
MATRIX_ONLY = ("bench/test_throughput_matrix.py",)
CORE = (*MATRIX_ONLY, "bench/test_oom_boundary.py")
# Energy is timed on the virtual clock too; 500%: what these runs judge is memory and throttling, not speed.
LENIENT = tuple(f"--rerank-threshold={m}=500%" for m in ("throughput", "latency", "energy"))


@pytest.fixture
def suite(
    pytester: pytest.Pytester, shared_cache_env: Path, virtual_clock: Callable[..., tuple[str, ...]]
) -> pytest.Pytester:
    # a package of its own: the benchmarks' module names (test_invariance, ...) are also this folder's
    for path in [*BENCHMARKS.glob("*.py"), *BENCHMARKS.glob("selfcheck/*.py")]:
        target = pytester.path / "bench" / path.relative_to(BENCHMARKS)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
        (target.parent / "__init__.py").touch()
    pytester.makeini("[pytest]\n")  # the rootdir (baselines/, reports/) stays here
    conftest = pytester.path / "bench" / "conftest.py"
    conftest.write_text(conftest.read_text() + QUICK)
    clock = virtual_clock()
    original = pytester.runpytest
    pytester.runpytest = lambda *args, **kwargs: original(*clock, *args, **kwargs)  # type: ignore[method-assign]
    return pytester


def _on_fake(monkeypatch: pytest.MonkeyPatch, gpus: int = 1, **options: Any) -> None:
    settings = {"gpus": ["h100"] * gpus, "budget_bytes": BUDGET, "bytes_per_token": PER_TOKEN, **options}
    monkeypatch.setenv("RERANK_PERF_FAKE_GPU", json.dumps(settings))


def _report(p: pytest.Pytester) -> dict[str, Any]:
    return dict(json.loads((p.path / "reports" / "report.json").read_text()))


def test_the_whole_suite_records_a_baseline_and_the_enforced_gate_judges_its_memory(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on_fake(monkeypatch)
    result = suite.runpytest(*MATRIX, "bench", "--rerank-save-baseline")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=10)  # matrix, 4 boundaries, overhead, invariance, batcher, router: none skipped
    result.stdout.fnmatch_lines(["*profile nvidia-h100-80gb-hbm3: NVIDIA H100 80GB HBM3*", "*on cuda:0, fp16*"])
    report = _report(suite)
    for cell in report["cells"]:
        assert cell["device"] == "cuda:0"
        assert cell["peak_vram_added_bytes"] == cell["batch_size"] * cell["padded_tokens"] // 8 * PER_TOKEN
        assert cell["latency_s"]["batch"] is not None  # CUDA events, read after a synchronise
        assert cell["mfu"] > 0
        assert cell["energy_j_per_1k_pairs"] > 0
        assert cell["throttled"] is False
    assert report["oom_boundaries"]["1024"]["max_batch"] == 3
    assert (suite.path / "reports" / "vram.png").is_file()
    baseline = suite.path / "baselines" / "nvidia-h100-80gb-hbm3.json"
    (section,) = json.loads(baseline.read_text())["models"].values()
    assert section["oom_boundaries"] == {"128": 31, "256": 15, "512": 7, "1024": 3}
    assert all(c["peak_vram_bytes"] > 0 for c in section["cells"].values())

    same = suite.runpytest(*MATRIX, *CORE, "--rerank-gate", "enforce", *LENIENT)
    assert same.ret == 0, same.stdout.str()
    verdict = json.loads((suite.path / "reports" / "rerank-verdict.json").read_text())
    assert verdict["status"] == "pass"
    assert {"vram", "max_batch"} <= {c["metric"] for c in verdict["comparisons"]}

    _on_fake(monkeypatch, bytes_per_token=2 * PER_TOKEN)  # twice the activation memory per token
    hungry = suite.runpytest(*MATRIX, *CORE, "--rerank-gate", "enforce", *LENIENT)
    assert hungry.ret == pytest.ExitCode.TESTS_FAILED
    verdict = json.loads((suite.path / "reports" / "rerank-verdict.json").read_text())
    regressed = {c["metric"] for c in verdict["comparisons"] if c["verdict"] == "regression"}
    assert regressed == {"vram", "max_batch"}

    # throttling is judged on the cells: the matrix alone shows it
    _on_fake(monkeypatch, throttle_mask=0x40)  # HwThermalSlowdown for the whole run
    hot = suite.runpytest(*MATRIX, *MATRIX_ONLY, "--rerank-gate", "enforce", *LENIENT)
    assert hot.ret == pytest.ExitCode.TESTS_FAILED
    hot.stdout.fnmatch_lines(["*regression gate: INCOMPLETE*throttled*", "*HwThermalSlowdown*not compared*"])

    recorded = baseline.read_text()
    hot_record = suite.runpytest(*MATRIX, *MATRIX_ONLY, "--rerank-save-baseline", "--rerank-force")
    assert hot_record.ret == pytest.ExitCode.TESTS_FAILED
    hot_record.stdout.fnmatch_lines(["*not recorded: *ran on a throttled GPU*saved to*"])
    assert baseline.read_text() == recorded  # untouched


def test_two_fake_gpus_one_xdist_worker_each(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    _on_fake(monkeypatch, gpus=2)
    four_cells = ("--rerank-batch-sizes", "1,2,4,8")  # xdist hands the first tests out two per worker
    result = suite.runpytest(*MATRIX, *four_cells, *MATRIX_ONLY, "-n", "2", "--rerank-save-baseline")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*merged from 2 xdist workers on cuda:?, cuda:?*"])  # the controller's one report
    report = _report(suite)
    assert report["devices"] == ["cuda:0", "cuda:1"]
    assert {c["device"] for c in report["cells"]} == {"cuda:0", "cuda:1"}  # each worker on its own GPU
    assert sorted(c["batch_size"] for c in report["cells"]) == [1, 2, 4, 8]  # each cell measured once, by one worker
    assert all(c["rounds"] == 3 and c["pairs_per_s"] for c in report["cells"])  # measured although pytest-benchmark
    # turns itself off under xdist
    assert (suite.path / "reports" / "index.md").is_file()

    pinned = suite.runpytest(*MATRIX, *MATRIX_ONLY, "-n", "2", "--rerank-device", "cuda:1")
    assert pinned.ret == pytest.ExitCode.USAGE_ERROR  # once, on the controller, before any worker starts
    pinned.stderr.fnmatch_lines(["ERROR: --rerank-device cuda:1 with 2 pytest-xdist workers*"])


def test_the_self_check_on_a_fake_gpu_passes_and_prints_its_table(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on_fake(monkeypatch, bytes_per_token=16 * 2**10)  # room for the long batch of 32 x 128 tokens
    # on the virtual clock the events and the synchronised call agree exactly: the check passes on any host
    result = suite.runpytest(*MATRIX, "bench/selfcheck", "--rerank-spread-processes", "2", "--rerank-max-length", "128")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "self-check: the harness's assumptions on this machine",
            "CUDA events vs synchronised wall time * PASS *forward * ms of a * ms call*",
            "peak memory resets to the resident weights * PASS *after reset +0.0 MiB held*",
            "NVML sees this process * PASS *",
            "run-to-run spread over 2 processes * between-process CV*",
        ]
    )
    checks = _report(suite)["selfcheck"]
    assert [c["verdict"] for c in checks][:5] == ["pass"] * 5


def test_the_self_check_fails_on_a_shared_or_throttled_gpu(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _on_fake(monkeypatch, other_processes=1, throttle_mask=0x20, host_pids=True)  # SwThermalSlowdown
    result = suite.runpytest(*MATRIX, "bench/selfcheck", "-k", "other or clocks or nvml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "NVML sees this process * WARN *host pids*",
            "no other process on the GPU * FAIL *2 process(es) listed*1 other process(es) share this GPU*",
            "SM clocks during a measured cell * FAIL *SwThermalSlowdown*",
        ]
    )


def test_the_self_check_on_the_cpu_says_it_is_a_gpu_check_and_exits_0(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--rerank-device", "cpu", "bench/selfcheck", "-k", "not spread")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines(["*CUDA events vs synchronised wall time * N/A * a GPU check*"])
