"""``--rerank-workload`` end to end on the CPU tiny twin: per-request latency, the data profile and its warning,
``lengths.png``, baselines keyed by the file's content, scenarios on the file's requests, and two workloads of one
size kept apart in every table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rerank_perf.measurements.matrix_result import best_batch_sizes, matrix_tables
from pytest_rerank_perf.report.plots import _by_workload
from pytest_rerank_perf.scenarios import BUILT_IN
from pytest_rerank_perf.scenarios.recommendations import recommend

# Timed on a virtual clock (``pytest_rerank_perf/fakegpu/clock.py``): a request's time and a round's are the seeded
# costs of their forwards on any host, and the virtual machine's fingerprint is fixed (record, then compare).
RUN = (
    *("-p", "pytest_rerank_perf.fakegpu.clock", "--rerank-device", "cpu"),
    *("--rerank-batch-sizes", "2,8", "--rerank-rounds", "3", "--rerank-gate", "advisory"),
)
LONG = "passage " * 700  # beyond max_length 512: cut
REQUESTS = [
    {"query": "GPU driver update", "documents": ["Open the control panel.", LONG, "Reboot after installing."]},
    {"query": "退货政策", "documents": ["七天无理由退货。", "Returns within 30 days.", LONG, "不相关的段落。", "ok"]},
    {"query": "visa", "documents": ["Apply online.", "Bring a photo."]},
]


def _write(path: Path, rows: list[dict[str, object]], newline: str = "\n") -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + newline for r in rows), encoding="utf-8", newline="")
    return path


@pytest.fixture
def bench(bench: pytest.Pytester) -> pytest.Pytester:
    """The matrix benchmark (conftest) beside a requests file."""
    _write(bench.path / "requests.jsonl", REQUESTS)
    return bench


def test_a_requests_file_is_measured_per_request_with_its_profile(bench: pytest.Pytester) -> None:
    result = bench.runpytest(*RUN, "--rerank-workload", "requests.jsonl")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*rerank-perf summary*",
            "rerank-perf: TRUNCATED: max_length 512 cuts 2 of 10 pairs (20.0%) of requests-*",
            "*data requests-* (*requests.jsonl): 10 pairs in 3 requests (documents per request: min 2, p50 3, max 5)",
            "*num_pairs=10  workload=requests-*-n10*",
            "batch*round p50 ms*request p50 ms*request p99 ms*",
            "edge * (1-5 pairs, p99 <= 100 ms): batch_size * (judged on the 3 requests of 1-5 documents in requests-*",
            "data * (2-5 pairs, no SLO): batch_size *",
        ]
    )
    report = json.loads((bench.path / "reports" / "report.json").read_text())
    (profile,) = report["data_profiles"].values()
    assert (profile["pairs"], profile["requests"], profile["truncated_pairs"]) == (10, 3, 2)
    assert set(profile["padding"]["10"]) == {"2", "8"}
    for cell in report["cells"]:
        assert cell["requests"]["pairs"] == [3, 5, 2]
        assert cell["requests"]["kind"] == "requests"
        assert len(cell["requests"]["median_s"]) == 3
        assert cell["latency_s"]["request"]["count"] == 9  # 3 requests x 3 measured rounds
        assert cell["latency_s"]["request"]["p99"] < cell["latency_s"]["call"]["median"]  # a request, not a round
    assert (bench.path / "reports" / "lengths.png").stat().st_size > 0
    index = (bench.path / "reports" / "index.md").read_text()
    assert "## Data profile" in index
    assert "![Encoded pair lengths](lengths.png)" in index


def test_a_baseline_recorded_on_a_file_is_keyed_by_its_content(bench: pytest.Pytester) -> None:
    one_cell = ("--rerank-batch-sizes", "8")
    recorded = bench.runpytest(
        *RUN, *one_cell, "--rerank-workload", "requests.jsonl", "--rerank-save-baseline", "--rerank-processes", "2"
    )
    assert recorded.ret == 0, recorded.stdout.str()  # the pooled process gets the file too
    (profile,) = (bench.path / "baselines").glob("*.json")
    (section,) = json.loads(profile.read_text())["models"].values()
    data_id = json.loads((bench.path / "reports" / "report.json").read_text())["cells"][0]["workload_id"]
    assert set(section["cells"]) == {f"{data_id}/bs8"}

    # the same content renamed and saved with CRLF is compared; one edited document is another workload
    _write(bench.path / "copy.jsonl", REQUESTS, "\r\n")
    same = bench.runpytest(*RUN, *one_cell, "--rerank-workload", "copy.jsonl")
    verdict = json.loads((bench.path / "reports" / "rerank-verdict.json").read_text())
    assert verdict["comparisons"], same.stdout.str()
    edited = [REQUESTS[0], REQUESTS[1], {"query": "visa", "documents": ["Apply online.", "Bring two photos."]}]
    _write(bench.path / "edited.jsonl", edited)
    other = bench.runpytest(*RUN, *one_cell, "--rerank-workload", "edited.jsonl", "--rerank-require-baseline")
    assert other.ret == pytest.ExitCode.TESTS_FAILED
    other.stdout.fnmatch_lines(["*regression gate: INCOMPLETE: compared nothing*"])


def test_a_flat_file_is_cut_into_num_pairs_chunks(bench: pytest.Pytester) -> None:
    rows = [{"query": "q", "document": f"document {i}"} for i in range(25)]
    _write(bench.path / "pairs.jsonl", rows)
    result = bench.runpytest(*RUN, "--rerank-workload", "pairs.jsonl", "--rerank-num-pairs", "5,20", "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_throughput?pairs-*-n5-bs2?*PASSED*"])
    report = json.loads((bench.path / "reports" / "report.json").read_text())
    calls = {c["num_pairs"]: c["requests"]["pairs"] for c in report["cells"]}
    result.stdout.fnmatch_lines(["*chunks per round: 5 calls of 5, 0 pairs left out; 1 calls of 20, 5 pairs left out"])
    assert calls == {5: [5] * 5, 20: [20]}  # 25 pairs: five chunks of 5, one of 20 (the last 5 left out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--rerank-num-pairs", "4"),
            "*--rerank-num-pairs (or ini rerank_num_pairs) does not apply to *requests.jsonl*",
        ),
        (("--rerank-pair-tokens", "64"), "*--rerank-workload and --rerank-pair-tokens (or ini *) both say what*"),
        (("-o", "rerank_pair_tokens=64"), "*--rerank-workload and --rerank-pair-tokens (or ini *) both say what*"),
    ],
)
def test_options_that_contradict_the_file_are_usage_errors(
    bench: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    result = bench.runpytest(*RUN, "--rerank-workload", "requests.jsonl", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_file_is_one_usage_error_naming_its_line(bench: pytest.Pytester) -> None:
    _write(bench.path / "bad.jsonl", [REQUESTS[0], {"query": "q", "documents": ["a", ""]}])
    result = bench.runpytest(*RUN, "--rerank-workload", "bad.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rerank-workload: *bad.jsonl:2: 'documents'[[]1[]] is empty or whitespace only*"])


TWO = """
import pytest
from pytest_rerank_perf import workload_from_pairs

@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_two_of_a_size(rerank_bench, rerank_model, name):
    pairs = [(f"{name} query", f"{name} document {i}") for i in range(8)]
    rerank_bench(workload_from_pairs(pairs, rerank_model.tokenizer, name), 8)
"""


def test_two_workloads_of_one_size_stay_apart(pytester: pytest.Pytester, shared_cache_env: Path) -> None:
    """The issue's case: two 8-pair workloads shared one table with two unlabelled ``8 *`` rows."""
    pytester.makepyfile(test_two=TWO)
    result = pytester.runpytest("--rerank-device", "cpu", "--rerank-rounds", "3", "--rerank-gate", "off")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["num_pairs=8  workload=alpha-*-n8  *", "8 *", "num_pairs=8  workload=beta-*-n8  *"])
    cells = json.loads((pytester.path / "reports" / "report.json").read_text())["cells"]
    assert len(matrix_tables(cells)) == 2
    assert len(best_batch_sizes(cells)) == 2
    assert sorted(_by_workload(cells)) == sorted(f"8 pairs: {c['workload_id'][:-3]}" for c in cells)


def _request_cell(bs: int, medians: list[float], kind: str = "requests", sizes: tuple[int, ...] = (2, 4, 8)) -> dict:
    return {
        "status": "ok",
        "workload_id": f"{kind}-abc-n{sum(sizes) if kind == 'requests' else sizes[0]}",
        "num_pairs": sum(sizes) if kind == "requests" else sizes[0],
        "batch_size": bs,
        "pairs_per_s": 100.0,
        "latency_s": {"call": {"p99": 1.0}, "request": {"p99": max(medians)}},
        "requests": {"kind": kind, "pairs": list(sizes), "median_s": medians},
    }


def test_chunks_of_a_flat_file_are_judged_per_call_not_as_requests() -> None:
    """A round of 5 chunks takes 1 s, each call 20 ms: realtime's 50 ms p99 holds for one call of 10 pairs."""
    cells = [_request_cell(8, [0.020] * 5, "pairs", (10,) * 5)]
    recs = {r.scenario: r for r in recommend(BUILT_IN, cells, 512)}
    assert recs["realtime"].batch_size == 8
    assert recs["realtime"].p99_s == pytest.approx(0.020)
    assert "data" not in recs  # a flat file holds no requests


def test_scenarios_are_judged_on_the_files_own_request_sizes() -> None:
    cells = [
        _request_cell(1, [0.010, 0.020, 0.300]),  # the 8-document request is slow at bs 1
        _request_cell(8, [0.015, 0.030, 0.040]),
    ]
    recs = {r.scenario: r for r in recommend(BUILT_IN, cells, 512)}
    realtime = recs["realtime"]  # 1-10 documents, p99 50 ms: every request is in range
    assert realtime.batch_size == 8
    assert any("judged on the 3 requests of 1-10 documents in requests-abc-n14" in n for n in realtime.notes)
    edge = recs["edge"]  # 1-5 documents: the 2- and 4-document requests only, where bs 1 is faster
    assert edge.batch_size == 1
    assert edge.p99_s == pytest.approx(0.020, rel=0.01)
    offline = recs["offline"]
    assert offline.batch_size is None
    assert "has no request of 50+ documents (its requests hold 2-8)" in offline.notes[0]
    data = recs["data"]
    assert (data.pairs, data.batch_size) == ("2-8", 8)
    assert data.margin.startswith("p99 ")  # no SLO, the p99 still said


def test_an_ini_data_scenario_gives_the_files_traffic_its_limits() -> None:
    from pytest_rerank_perf.scenarios import parse_scenarios

    scenarios = parse_scenarios(["data: pairs=1+ p99=35ms"])
    cells = [_request_cell(1, [0.010, 0.020, 0.300]), _request_cell(8, [0.015, 0.030, 0.040])]
    (data,) = [r for r in recommend(scenarios, cells, 512) if r.scenario == "data"]  # one, not two
    assert data.pairs == "2-8"  # the file's range, whatever the line said
    assert data.batch_size is None  # bs 8's p99 is ~40 ms over the 35 ms limit; bs 1's 300 ms too
