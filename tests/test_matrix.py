"""The benchmark core on the CPU: matrix parametrisation, what a cell records, OOM handling, the summary."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.backends.standin import OomAbove
from pytest_rerank_perf.backends.twin import BGE_RERANKER_V2_M3_CONFIG
from pytest_rerank_perf.machine.flops import flops_per_batch, peak_flops
from pytest_rerank_perf.machine.hardware import detect
from pytest_rerank_perf.measurements.cell import Cell, CellResult, RoundsPolicy
from pytest_rerank_perf.measurements.matrix import CellRunner
from pytest_rerank_perf.measurements.matrix_result import MatrixResult, best_batch_sizes, format_matrix
from pytest_rerank_perf.plugin.options import RerankOptions
from pytest_rerank_perf.stats import Percentiles
from pytest_rerank_perf.workloads.lengths import parse_length_dist
from pytest_rerank_perf.workloads.workload import Fixed, WorkloadSpec, build_workload

FAST = RoundsPolicy(warmup_rounds=1, min_rounds=2, min_time_s=0.0)


class FakeBenchmark:
    """pytest-benchmark's pedantic contract: warm-up rounds, then ``rounds`` timed calls."""

    def __init__(self) -> None:
        self.rounds = 0
        self.warmup_rounds: int | None = None

    def pedantic(self, target: Any, rounds: int, warmup_rounds: int, iterations: int) -> None:
        for _ in range(warmup_rounds + rounds * iterations):
            target()
        self.rounds = rounds
        self.warmup_rounds = warmup_rounds


@pytest.fixture(scope="module")
def runner(tiny_model: CrossEncoderReranker) -> CellRunner:
    return CellRunner(tiny_model, detect("cpu"), FAST)


def test_cell_records_throughput_latency_and_null_vram_on_cpu(runner: CellRunner, tiny_tokenizer: Any) -> None:
    work = build_workload(WorkloadSpec(Fixed(64)), tiny_tokenizer, 12)
    bench = FakeBenchmark()
    result = runner.run(bench, work, 4)
    assert result.status == "ok"
    assert result.rounds == bench.rounds == 2
    assert bench.warmup_rounds == 0  # the runner warms up itself: pedantic's rounds are exactly the measured ones
    info = result.to_dict()
    latency_call = info["latency_s"]["call"]
    assert latency_call is not None
    assert latency_call["count"] == 2
    assert len(info["samples"]["throughput"]) == 2
    latency_batch = info["latency_s"]["batch"]
    assert latency_batch is not None
    assert latency_batch["count"] == 2 * 3  # rounds x batches; warm-up excluded
    assert len(info["samples"]["latency"]) == 2  # one mean forward time per round
    assert result.pairs_per_s == pytest.approx(12 / latency_call["median"])
    assert result.tokens_per_s == pytest.approx(12 * 64 / latency_call["median"])
    for key in (
        "peak_vram_allocated_bytes",
        "peak_vram_reserved_bytes",
        "nvml_peak_process_bytes",
        "mfu",
        "energy_j_per_1k_pairs",
    ):
        assert info[key] is None, key  # not measured on the CPU: null, never zero
    assert set(info["why_null"]) >= {"peak_vram_allocated_bytes", "energy_j_per_1k_pairs"}  # and why
    assert info["model_source"] == "twin"
    assert info["profile_id"].startswith("cpu-")
    assert info["dtype"] == "fp32"


def test_larger_workload_reports_proportionally_more_tokens(runner: CellRunner, tiny_tokenizer: Any) -> None:
    small = runner.run(FakeBenchmark(), build_workload(WorkloadSpec(Fixed(80)), tiny_tokenizer, 10), 8)
    large = runner.run(FakeBenchmark(), build_workload(WorkloadSpec(Fixed(80)), tiny_tokenizer, 40), 8)
    assert large.real_tokens == 4 * small.real_tokens == 3200
    assert large.padded_tokens == 4 * small.padded_tokens


def test_oom_is_recorded_and_larger_batches_are_skipped(tiny_model: CrossEncoderReranker, tiny_tokenizer: Any) -> None:
    stand_in = OomAbove(tiny_model, limit=8)
    run = CellRunner(stand_in, detect("cpu"), FAST)
    work = build_workload(WorkloadSpec(Fixed(32)), tiny_tokenizer, 40)
    statuses = {bs: run.run(FakeBenchmark(), work, bs) for bs in (1, 8, 16, 32, 64)}
    assert {bs: r.status for bs, r in statuses.items()} == {1: "ok", 8: "ok", 16: "oom", 32: "skipped", 64: "skipped"}
    assert "CUDA out of memory" in statuses[16].reason
    assert statuses[32].reason == "batch_size 16 ran out of memory"
    assert 32 not in stand_in.calls  # skipped cells never touch the model
    # Another input size keeps its own boundary.
    other = build_workload(WorkloadSpec(Fixed(32)), tiny_tokenizer, 10)
    assert run.run(FakeBenchmark(), other, 16).status == "oom"
    assert run.run(FakeBenchmark(), other, 4).status == "ok"


def test_other_runtime_errors_are_not_swallowed(tiny_model: CrossEncoderReranker, tiny_tokenizer: Any) -> None:
    # device.is_oom counts a RuntimeError naming a CUDA allocation failure as out-of-memory; any other one is a bug
    stand_in = OomAbove(tiny_model, limit=1, error=lambda: RuntimeError("CUDA error: an illegal memory access"))
    run = CellRunner(stand_in, detect("cpu"), FAST)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        run.run(FakeBenchmark(), build_workload(WorkloadSpec(Fixed(32)), tiny_tokenizer, 4), 2)


def test_rounds_policy() -> None:
    gpu = RoundsPolicy.for_device("cuda:0")
    assert gpu.rounds_for(0.5) == 10  # at least min_rounds
    assert gpu.rounds_for(0.001) == 200  # capped
    assert gpu.rounds_for(0.02) == 50  # 1 s of measured time
    assert RoundsPolicy.for_device("cpu", fixed_rounds=7).rounds_for(0.001) == 7
    cpu = RoundsPolicy.for_device("cpu")  # the CPU fallback shows the harness working: 10 rounds, a quarter second
    assert cpu.rounds_for(0.025) == 10
    assert cpu.rounds_for(0.001) == 200
    assert (cpu.breakdown_rounds, gpu.breakdown_rounds) == (3, 5)
    assert RoundsPolicy.for_device("cpu", recording=True).rounds_for(0.025) == 30  # 3x when recording


def test_flops_follow_the_issue_formula() -> None:
    cfg = type(
        "C", (), {k: BGE_RERANKER_V2_M3_CONFIG[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers")}
    )
    d = 1024
    for n in (16, 256, 1024):
        assert flops_per_batch(cfg, 1, n) == n * (24 * d * d * 24 + 4 * n * d * 24)
    assert flops_per_batch(cfg, 8, 256) == 8 * flops_per_batch(cfg, 1, 256)
    assert flops_per_batch(cfg, 1, 1) == pytest.approx(0.604e9, rel=1e-3)


def test_peak_flops_lookup() -> None:
    assert peak_flops("NVIDIA H100 80GB HBM3", "fp16")[0] == pytest.approx(989.4e12)
    assert peak_flops("NVIDIA H100 PCIe", "bf16")[0] == pytest.approx(756.5e12)
    assert peak_flops("NVIDIA A100-SXM4-80GB", "fp32")[0] == pytest.approx(19.5e12)
    assert peak_flops("Mystery Accelerator", "fp16")[0] is None
    assert peak_flops(None, "fp16") == (None, "MFU: no GPU")


def _result(n: int, bs: int, pairs_per_s: float | None, status: str = "ok") -> CellResult:
    fields: dict[str, Any] = {}
    if pairs_per_s:
        s = n / pairs_per_s
        lat = Percentiles(s, s, s, s, s, s, 5)
        fields = {"pairs_per_s": pairs_per_s, "tokens_per_s": pairs_per_s * 100, "latency_s": {"call": lat.to_dict()}}
    return CellResult(
        Cell(n, bs),
        f"w{n}",
        status,
        rounds=5,
        real_tokens=n * 100,
        padded_tokens=n * 100,  # type: ignore[arg-type]
        fields=fields,
    )


def test_summary_marks_the_best_batch_size() -> None:
    results = [
        _result(10, 1, 100.0),
        _result(10, 8, 300.0),
        _result(10, 16, 250.0),
        _result(50, 1, 90.0),
        _result(50, 8, 400.0),
        _result(50, 16, 400.0),
        _result(50, 32, None, "oom"),
    ]
    cells = [r.to_dict() for r in results]
    assert best_batch_sizes(cells) == {"w10": 8, "w50": 8}  # per workload; a tie goes to the smaller batch
    lines = format_matrix(cells)
    starred = [line.split()[0] for line in lines if line.split()[1:2] == ["*"]]
    assert starred == ["8", "8"]
    assert any(line.startswith("32") and "OOM" in line for line in lines)
    assert best_batch_sizes([replace(results[0], status="oom").to_dict()]) == {}


def test_the_terminal_matrix_shows_the_rows_that_matter_and_index_md_has_them_all() -> None:
    """The GPU matrix has 8 batch sizes per input size: the terminal keeps the best, the references of every
    recommendation (8 and 32) and a cell that did not run; the Markdown keeps every row."""
    speeds = {1: 100.0, 2: 150.0, 4: 200.0, 8: 300.0, 16: 450.0, 32: 400.0, 64: 380.0}
    cells = [_result(100, bs, pps).to_dict() for bs, pps in speeds.items()] + [_result(100, 128, None, "oom").to_dict()]
    lines = format_matrix(cells)
    rows = [line.split()[0] for line in lines if line[:1].isdigit()]
    assert rows == ["8", "16", "32", "128"]
    assert "(4 more batch sizes in index.md: 1, 2, 4, 64)" in lines
    markdown = MatrixResult(cells).markdown({})
    first = [line.split("|")[1].strip() for line in markdown if line.startswith("| ")]
    assert [c for c in first if c[:1].isdigit()] == ["1", "2", "4", "8", "16 *", "32", "64", "128"]
    short = [_result(10, bs, 100.0 * bs).to_dict() for bs in (1, 4, 8, 16)]  # 4 batch sizes: every one shown
    assert [line.split()[0] for line in format_matrix(short) if line[:1].isdigit()] == ["1", "4", "8", "16"]


MATRIX_TEST = """
def test_cell(rerank_bench, rerank_cell, rerank_workload):
    result = rerank_bench(rerank_workload, rerank_cell.batch_size)
    assert result.pairs_per_s > 0
"""


def test_matrix_ids_and_order(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_cell(rerank_cell):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "--rerank-batch-sizes", "8,1", "--rerank-num-pairs", "50,10")
    ids = [line.split("[")[1].rstrip("]") for line in result.stdout.lines if line.startswith("test_")]
    assert ids == ["fixed256-n10-bs1", "fixed256-n10-bs8", "fixed256-n50-bs1", "fixed256-n50-bs8"]
    # the workload is in the id: pytest-benchmark pairs saved runs by it, so two workloads never share one
    other = pytester.runpytest("--collect-only", "-q", "--rerank-pair-tokens", "uniform:32-64", "--rerank-seed", "3")
    assert any(line.endswith("::test_cell[uniform32-64-s3-n10-bs1]") for line in other.stdout.lines)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU default matrix")
def test_cpu_default_matrix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_cell(rerank_cell):\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*6 tests collected*"])  # CPU_NUM_PAIRS x CPU_BATCH_SIZES = 2 x 3


def test_processes_auto_pools_3_on_a_gpu_and_2_on_the_cpu() -> None:
    """``nox -s gpu-bench`` passes --rerank-processes auto: the CPU fallback pools the fewest processes that measure
    the between-process drift; a GPU keeps its 3; a number given is kept as given."""
    auto = RerankOptions(
        "auto", "auto", "auto", 512, None, None, parse_length_dist("256"), 0, None, processes_auto=True
    )
    assert auto.for_device("cpu").processes == 2
    assert auto.for_device("cuda:0").processes == 3
    assert not auto.for_device("cpu").processes_auto
    given = replace(auto, processes=5, processes_auto=False)
    assert given.for_device("cpu") is given


def test_bad_rounds_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--rerank-rounds", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--rerank-rounds 0: must be at least 1" in result.stderr.str()


def test_benchmark_json_holds_every_key(pytester: pytest.Pytester, shared_cache_env: Path) -> None:
    pytester.makepyfile(MATRIX_TEST)
    out = pytester.path / "bench.json"
    result = pytester.runpytest(
        "--rerank-device",
        "cpu",
        "--rerank-batch-sizes",
        "2,8",
        "--rerank-num-pairs",
        "8,16",
        "--rerank-rounds",
        "2",
        "--rerank-pair-tokens",
        "uniform:16-64",
        f"--benchmark-json={out}",
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*rerank-perf summary*", "*CPU FALLBACK*", "*num_pairs=8*", "*num_pairs=16*"])
    data = json.loads(out.read_text())
    assert data["machine_info"]["rerank_hardware"]["kind"] == "cpu"
    assert len(data["benchmarks"]) == 4
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        for key in (
            "batch_size",
            "num_pairs",
            "pairs_per_s",
            "tokens_per_s",
            "padded_tokens",
            "latency_s",
            "peak_vram_allocated_bytes",
            "peak_vram_reserved_bytes",
            "nvml_peak_process_bytes",
            "mfu",
            "model_id",
            "model_source",
            "profile_id",
            "dtype",
        ):
            assert key in info, key
        assert info["pairs_per_s"] > 0
        assert info["tokens_per_s"] > 0
        assert info["padded_tokens"] >= info["real_tokens"] > 0
        assert info["peak_vram_allocated_bytes"] is None
        assert set(info["latency_s"]["call"]) >= {"median", "p90", "p99"}
        assert set(info["latency_s"]["batch"]) >= {"median", "p90", "p99"}
    by_cell = {
        (b["extra_info"]["num_pairs"], b["extra_info"]["batch_size"]): b["extra_info"] for b in data["benchmarks"]
    }
    assert by_cell[(16, 2)]["real_tokens"] > by_cell[(8, 2)]["real_tokens"]
    assert data["rerank"]["model"]["source"] == "twin"
    assert {w.rsplit("-", 1)[1] for w in data["rerank"]["best_batch_size"]} == {"n8", "n16"}


def test_oom_cells_are_reported_not_passed(pytester: pytest.Pytester, shared_cache_env: Path) -> None:
    pytester.makeconftest(
        """
        import pytest
        from pytest_rerank_perf.backends import load_model
        from pytest_rerank_perf.backends.standin import OomAbove

        @pytest.fixture(scope="session")
        def rerank_model():
            return OomAbove(load_model("twin-tiny", device="cpu"), limit=8)
        """
    )
    pytester.makepyfile(MATRIX_TEST)
    result = pytester.runpytest(
        "-rs",
        "--rerank-device",
        "cpu",
        "--rerank-batch-sizes",
        "4,8,16,32",
        "--rerank-num-pairs",
        "20",
        "--rerank-rounds",
        "2",
    )
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*OOM: CUDA out of memory*", "*SKIPPED*batch_size 16 ran out of memory*"])
    result.stdout.fnmatch_lines(["16 * OOM*", "32 * skipped*"])
