"""Scenario definitions, their ini overrides, and the recommendations drawn from measured cells and load runs."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_rerank_perf.errors import UsageError
from pytest_rerank_perf.scenarios import BUILT_IN, Scenario, parse_scenarios
from pytest_rerank_perf.scenarios.cell_choice import recommend_from_cells
from pytest_rerank_perf.scenarios.recommendations import recommend


def cell(
    n: int, bs: int, pairs_per_s: float, p99_ms: float, vram_gib: float | None = None, status: str = "ok"
) -> dict[str, Any]:
    vram = int(vram_gib * 2**30) if vram_gib is not None else None
    return {
        "status": status,
        "num_pairs": n,
        "batch_size": bs,
        "pairs_per_s": pairs_per_s,
        "latency_s": {"call": {"p99": p99_ms / 1e3}},
        "nvml_peak_process_bytes": vram,
    }


def test_ini_lines_change_built_ins_and_add_scenarios() -> None:
    scenarios = {
        s.name: s
        for s in parse_scenarios(
            [
                "realtime: p99=30ms",
                "search: pairs=20-40 p99=0.08s vram=6GiB",
                "# a comment",
                "bulk: pairs=500+ p99=none",
            ]
        )
    }
    assert scenarios["realtime"].p99_s == pytest.approx(0.03)
    assert (scenarios["realtime"].min_pairs, scenarios["realtime"].max_pairs) == (1, 10)  # untouched keys stay
    assert scenarios["search"] == Scenario("search", 20, 40, 0.08, 6 * 2**30, description="from the ini file")
    assert scenarios["bulk"].max_pairs is None
    assert scenarios["bulk"].p99_s is None
    assert [s.name for s in parse_scenarios([])] == [s.name for s in BUILT_IN]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("realtime p99=30ms", "write NAME: pairs"),
        ("realtime: p99=fast", "p99='fast' is not a duration"),
        ("realtime: p99=1.2.3ms", "p99='1.2.3ms' is not a duration"),
        ("realtime: p99=0ms", "p99='0ms' is not a duration"),
        ("edge: vram=4GB", "vram='4GB' is not a size"),
        ("x: pairs=10-2", "pairs='10-2'"),
        ("x: p99=50ms", "a new scenario needs pairs"),
        ("realtime: colour=red", "unknown key 'colour'"),
        ("realtime: concurrent=maybe", "concurrent='maybe'"),
    ],
)
def test_bad_scenario_lines_name_the_problem(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_scenarios([line])


def test_recommendation_maximises_worst_case_throughput_within_the_limits() -> None:
    scenario = Scenario("s", 10, 50, 0.1, vram_bytes=8 * 2**30)
    cells = [
        cell(10, 8, 300, 20, 2),
        cell(50, 8, 320, 90, 3),  # feasible, worst case 300
        cell(10, 32, 500, 30, 4),
        cell(50, 32, 520, 150, 5),  # fastest, but misses the SLO at 50 pairs
        cell(10, 16, 380, 25, 3),
        cell(50, 16, 360, 95, 9),  # misses the VRAM cap at 50 pairs
        cell(10, 4, 310, 15, 2),
        cell(50, 4, 290, 80, 2),  # feasible, worst case 290
        cell(200, 64, 9999, 10, 1),  # outside the scenario's range: ignored
    ]
    rec = recommend_from_cells(scenario, cells, max_length=512)
    assert rec.batch_size == 8
    assert rec.judged_on == (10, 50)
    assert rec.pairs_per_s == 300
    assert rec.p99_s == pytest.approx(0.09)
    assert "10% headroom" in rec.margin
    assert "+3.4% pairs/s over the next best (predict(bs=4))" in rec.margin


def test_recommendation_says_when_nothing_fits_and_why() -> None:
    rec = recommend_from_cells(Scenario("s", 1, 10, 0.01), [cell(10, 1, 100, 50), cell(10, 8, 300, 20)], 512)
    assert rec.batch_size is None
    assert "predict(bs=1): p99 50.0 ms > 10 ms" in rec.notes[-1]


def test_recommendation_judges_on_a_harder_size_when_the_range_was_not_measured() -> None:
    rec = recommend_from_cells(Scenario("edge", 1, 5, 0.1), [cell(10, 4, 100, 20), cell(50, 4, 200, 90)], 512)
    assert rec.judged_on == (10,)
    assert "harder case" in rec.notes[0]


def test_recommendation_names_the_variant_and_its_ratio_to_predict_at_32_and_8() -> None:
    def variant(n: int, bs: int, tp: float, p99: float, name: str, status: str = "ok") -> dict[str, Any]:
        return {**cell(n, bs, tp, p99, status=status), "variant": name}

    cells = [
        cell(50, 8, 300, 40),
        cell(50, 32, 240, 90),
        variant(50, 8, 420, 30, "token-sorted"),
        variant(50, 32, 360, 70, "token-sorted"),
        variant(50, 16, 9999, 5, "token-budget", status="rejected"),  # wrong scores: never a candidate
    ]
    rec = recommend_from_cells(Scenario("s", 50, None, 0.5), cells, 512)
    assert (rec.variant, rec.batch_size) == ("token-sorted", 8)
    assert rec.vs_predict_bs32 == pytest.approx(420 / 240)
    assert rec.vs_predict_bs8 == pytest.approx(420 / 300)
    assert "1.75x predict(bs=32); 1.40x predict(bs=8)" in rec.margin


def test_a_reference_this_run_did_not_measure_gives_no_ratio_and_says_so() -> None:
    cells = [cell(50, 4, 300, 40), cell(50, 16, 280, 60)]
    rec = recommend_from_cells(Scenario("s", 50, None, None), cells, 512)
    assert (rec.variant, rec.batch_size) == ("predict", 4)
    assert rec.vs_predict_bs32 is None
    assert rec.vs_predict_bs8 is None
    assert "predict(bs=32) was not measured at these sizes in this run: no ratio to it" in rec.notes
    assert "predict(bs=8) was not measured at these sizes in this run: no ratio to it" in rec.notes


def test_oom_cells_never_win() -> None:
    cells = [cell(50, 8, 300, 20), cell(50, 64, 0, 0, status="oom")]
    assert recommend_from_cells(Scenario("s", 50, None, None), cells, 512).batch_size == 8


def test_concurrent_scenarios_take_the_server_with_the_highest_sustained_rate() -> None:
    def server(rate: float | None, max_batch: int) -> dict[str, Any]:
        points = [] if rate is None else [{"target_rate": rate, "pairs_per_s": rate * 10, "latency": {"p99": 0.15}}]
        return {"max_rate": rate, "max_batch": max_batch, "points": points}

    load = {
        "concurrent": {
            "pairs_per_request": 10,
            "p99_target_s": 0.2,
            "reference": "predict-bs10",
            "servers": {
                "predict-bs10": server(30.0, 10),
                "batcher-mb32": server(75.0, 32),
                "batcher-mb128": server(None, 128),
            },
        }
    }
    recs = {r.scenario: r for r in recommend(BUILT_IN, [cell(10, 8, 300, 20)], 512, load)}
    rec = recs["concurrent"]
    assert rec.server == "batcher-mb32"
    assert rec.batch_size == 32
    assert rec.max_rate == 75.0
    assert "2.50x the rate of per-request predict" in rec.margin
    assert recs["realtime"].batch_size == 8
    assert recommend(BUILT_IN, [], 512, None)[3].notes == ("the dynamic-batcher load benchmark did not run",)
