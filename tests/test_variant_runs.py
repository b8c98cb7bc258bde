"""Variants end to end on the CPU tiny twin: keyed apart in the baseline, compared like with like by the gate,
named in the recommendations, and a variant that answers differently failing its test."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_rerank_perf.backends import variants
from pytest_rerank_perf.backends.token_batched import TokenBatchedReranker

# Timed on a virtual clock (``pytest_rerank_perf/fakegpu/clock.py``): predict's forwards and the variant's cost the
# same seeded time on any host, and the virtual machine's fingerprint is fixed (record, then compare, on one machine).
MATRIX = (
    *("-p", "pytest_rerank_perf.fakegpu.clock", "--rerank-device", "cpu", "--rerank-pair-tokens", "32"),
    *("--rerank-num-pairs", "12", "--rerank-batch-sizes", "4,8", "--rerank-rounds", "3"),
)
LENIENT = ("--rerank-threshold", "throughput=500%", "--rerank-threshold", "latency=500%")
VARIANTS = ("--rerank-variants", "token-sorted")


def test_variant_cells_are_recorded_apart_and_compared_like_with_like(bench: pytest.Pytester) -> None:
    assert bench.runpytest(*MATRIX, *VARIANTS, "--rerank-save-baseline").ret == 0
    (profile,) = (bench.path / "baselines").glob("*.json")
    (section,) = json.loads(profile.read_text())["models"].values()
    keys = sorted(section["cells"])
    assert [k.split("/", 1)[1] for k in keys] == ["bs4", "bs4+token-sorted", "bs8", "bs8+token-sorted"]
    assert section["cells"][keys[1]]["variant"] == "token-sorted"
    assert "variant" not in section["cells"][keys[0]]

    result = bench.runpytest(*MATRIX, *VARIANTS, *LENIENT, "--rerank-gate", "enforce", "--rerank-require-baseline")
    assert result.ret == 0, result.stdout.str()
    verdict = json.loads((bench.path / "reports" / "rerank-verdict.json").read_text())
    compared = {c["cell"] for c in verdict["comparisons"] if c["metric"] == "throughput"}
    assert compared == set(keys)

    # predict alone against that baseline: the variant's cells are "not planned", never compared with predict's
    alone = bench.runpytest(*MATRIX, *LENIENT, "--rerank-gate", "enforce")
    alone.stdout.fnmatch_lines(["*in the baseline, not planned in this run: *+token-sorted*"])

    report = json.loads((bench.path / "reports" / "report.json").read_text())
    assert {c["variant"] for c in report["cells"]} == {"predict"}


def test_the_variants_table_and_the_recommendations_name_the_variant(bench: pytest.Pytester) -> None:
    result = bench.runpytest(*MATRIX, *VARIANTS, "--rerank-gate", "off")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["variants against predict: *", "batch * predict * token-sorted*"])
    report = json.loads((bench.path / "reports" / "report.json").read_text())
    recs = {r["scenario"]: r for r in report["scenarios"]}
    assert recs["realtime"]["variant"] in ("predict", "token-sorted")
    assert recs["realtime"]["vs_predict_bs8"] is not None  # bs 8 was measured in this run
    assert recs["realtime"]["vs_predict_bs32"] is None  # bs 32 was not: no ratio, and a note says so
    assert any("predict(bs=32) was not measured" in n for n in recs["realtime"]["notes"])
    for cell in report["cells"]:
        assert sum(p["share"] for p in cell["breakdown"]["parts"].values()) == pytest.approx(1.0)


class OffByOne(TokenBatchedReranker):
    def logits(self, pairs: Any, batch_size: int) -> Any:
        return super().logits(pairs, batch_size) + 1.0  # fast, and wrong


def test_a_variant_that_answers_differently_fails_and_is_never_recommended(
    bench: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(variants.VARIANTS, "token-sorted", lambda base, name: OffByOne(base, name, "sorted"))
    result = bench.runpytest(*MATRIX, *VARIANTS, "--rerank-gate", "off")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*WRONG SCORES: variant token-sorted: its logits differ from predict's by 1*"])
    report = json.loads((bench.path / "reports" / "report.json").read_text())
    rejected = [c for c in report["cells"] if c["variant"] == "token-sorted"]
    assert {c["status"] for c in rejected} == {"rejected"}
    assert all(c["pairs_per_s"] is None for c in rejected)
    assert all(r.get("variant") in (None, "predict") for r in report["scenarios"])
    assert any("token-sorted not considered: its scores differ" in n for r in report["scenarios"] for n in r["notes"])
