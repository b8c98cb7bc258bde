"""Variants: token-batched and attention configurations of the sentence-transformers backend, their batch plans,
their keys, and the score check that rejects a faster wrong answer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.backends.standin import SkewedLogits
from pytest_rerank_perf.backends.variants import build_variant, check_variants, parse_variants
from pytest_rerank_perf.errors import UsageError
from pytest_rerank_perf.machine.hardware import detect
from pytest_rerank_perf.measurements.cell import RoundsPolicy
from pytest_rerank_perf.measurements.matrix import CellRunner, Unbenchmarked
from pytest_rerank_perf.measurements.variant_check import ReferenceScores, score_mismatch
from pytest_rerank_perf.store.schema import cell_key, cell_sort_key, key_of
from pytest_rerank_perf.workloads.batch_plans import budget_plan, sorted_plan, token_budget
from pytest_rerank_perf.workloads.workload import LongTail, Workload, WorkloadSpec, build_workload

VARIANTS = ("token-sorted", "token-budget", "attn=eager", "attn=sdpa")


@pytest.fixture(scope="module")
def longtail(tiny_model: CrossEncoderReranker) -> Workload:
    return build_workload(WorkloadSpec(LongTail(), seed=3), tiny_model.tokenizer, 40)


def test_encode_gives_predicts_own_token_ids(tiny_model: CrossEncoderReranker, longtail: Workload) -> None:
    pairs = list(longtail.pairs[:6])
    with tiny_model.truncating_at(64):  # truncation too: longest_first, as predict cuts
        features = tiny_model.cross_encoder.preprocess(pairs)
        encoded = tiny_model.encode(pairs)
    rows = zip(features["input_ids"].tolist(), features["attention_mask"].tolist(), encoded, strict=True)
    for row, mask, ids in rows:
        assert tuple(t for t, m in zip(row, mask, strict=True) if m) == ids


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("batch_size", [1, 8])
def test_each_variant_scores_as_predict_does(
    tiny_model: CrossEncoderReranker, longtail: Workload, name: str, batch_size: int
) -> None:
    variant = build_variant(tiny_model, name)
    assert variant.variant == name
    assert score_mismatch(variant, ReferenceScores(tiny_model), longtail, batch_size) is None
    got, ref = variant.predict(list(longtail.pairs), batch_size), tiny_model.predict(list(longtail.pairs), batch_size)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_an_attention_variant_leaves_predict_on_its_own_kernel(
    tiny_model: CrossEncoderReranker, longtail: Workload
) -> None:
    config = tiny_model.cross_encoder.model.config
    loaded = config._attn_implementation
    seen: list[str] = []
    hook = tiny_model.batch_module().register_forward_pre_hook(lambda *_: seen.append(config._attn_implementation))
    try:
        build_variant(tiny_model, "attn=eager").predict(list(longtail.pairs[:4]), 4)
    finally:
        hook.remove()
    assert seen == ["eager"]  # the variant ran its kernel...
    assert config._attn_implementation == loaded  # ...and put the shared model's back at once


class Renamed(SkewedLogits):
    """A variant whose logits move with the batch size: wrong by 1e-3 per pair in the batch."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, "batch_size")
        self.variant = "token-sorted"


def test_a_variant_with_wrong_scores_is_rejected_before_it_is_timed(
    tiny_model: CrossEncoderReranker, longtail: Workload
) -> None:
    wrong = Renamed(tiny_model)
    reason = score_mismatch(wrong, ReferenceScores(tiny_model), longtail, 8)
    assert reason is not None
    assert "differ from predict's" in reason
    assert "fp32 tolerance" in reason
    runner = CellRunner(wrong, detect("cpu"), RoundsPolicy(1, 2, 0.0), reference=ReferenceScores(tiny_model))
    result = runner.run(Unbenchmarked(), longtail, 8)
    assert result.status == "rejected"
    assert result.pairs_per_s is None
    assert result.rounds == 0
    assert result.to_dict()["variant"] == "token-sorted"
    assert result.fields["why_null"]["*"] == reason


class NanScores(Renamed):
    def logits(self, pairs: Any, batch_size: int) -> Any:
        out = self.inner.logits(pairs, batch_size)
        out[0] = np.nan  # NaN compares as neither near nor far: it must still miss
        return out


class WrongActivation(Renamed):
    """Right logits, wrong scores: the timed path is predict, so predict is checked too."""

    def logits(self, pairs: Any, batch_size: int) -> Any:
        return self.inner.logits(pairs, batch_size)

    def predict(self, pairs: Any, batch_size: int) -> Any:
        return self.inner.logits(pairs, batch_size).astype(np.float32)  # no sigmoid


@pytest.mark.parametrize(("kind", "what"), [(NanScores, "logits"), (WrongActivation, "scores")])
def test_nan_or_a_wrong_timed_path_is_rejected_too(
    tiny_model: CrossEncoderReranker, longtail: Workload, kind: type, what: str
) -> None:
    reason = score_mismatch(kind(tiny_model), ReferenceScores(tiny_model), longtail, 8)
    assert reason is not None
    assert f"its {what} differ from predict's" in reason


def test_token_sorting_never_pads_more_than_predicts_character_order(
    tiny_model: CrossEncoderReranker, longtail: Workload
) -> None:
    sorted_variant = build_variant(tiny_model, "token-sorted")
    for batch_size in (2, 4, 8, 16):
        predict = longtail.batch_stats(batch_size, 512)
        ours = longtail.batch_stats(batch_size, 512, sorted_variant.batches)
        assert ours.padded_tokens <= predict.padded_tokens
        assert ours.real_tokens == predict.real_tokens


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 600), min_size=1, max_size=80), st.integers(1, 64), st.sampled_from([64, 512]))
def test_batch_plans_cover_every_pair_once_within_their_limits(lengths: list[int], batch_size: int, cut: int) -> None:
    lengths = [min(n, cut) for n in lengths]
    budget = token_budget(batch_size, lengths)
    for plan in (sorted_plan(lengths, batch_size), budget_plan(lengths, budget)):
        assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))
        assert all(batch for batch in plan)
        flat = [lengths[i] for batch in plan for i in batch]
        assert flat == sorted(flat, reverse=True)  # longest first
    assert all(len(b) <= batch_size for b in sorted_plan(lengths, batch_size))
    # a budget batch never holds more padded tokens than predict's largest batch of batch_size on these pairs
    assert all(len(b) * max(lengths[i] for i in b) <= budget for b in budget_plan(lengths, budget))
    assert budget == batch_size * max(lengths)


def test_variants_are_parsed_once_with_predict_first() -> None:
    assert parse_variants("") == ("predict",)
    assert parse_variants("token-budget, predict,token-sorted token-budget") == (
        "predict",
        "token-budget",
        "token-sorted",
    )
    with pytest.raises(UsageError, match=r"'token-sortd': not a variant; use any of predict, token-sorted"):
        parse_variants("token-sortd")


def test_gpu_only_variants_and_other_backends_are_refused_before_measuring() -> None:
    with pytest.raises(UsageError, match="compile: measured on a GPU only"):
        check_variants(("predict", "compile"), "cpu", "sentence-transformers")
    with pytest.raises(UsageError, match="--rerank-backend onnx measures predict only"):
        check_variants(("predict", "token-sorted"), "cpu", "onnx")
    with pytest.raises(UsageError, match="flash_attention_2 runs in fp16 or bf16"):
        check_variants(("predict", "attn=flash_attention_2"), "cuda:0", "sentence-transformers", "fp32")
    with pytest.raises(UsageError, match="'token_sorted': not a variant"):
        build_variant(object(), "token_sorted")  # type: ignore[arg-type]
    check_variants(("predict", "compile"), "cuda:0", "sentence-transformers")
    check_variants(("predict",), "cpu", "onnx")


def test_variant_cells_are_keyed_apart_and_predicts_keys_are_unchanged() -> None:
    assert cell_key("w-n50", 8) == "w-n50/bs8" == key_of({"workload_id": "w-n50", "batch_size": 8})
    assert cell_key("w-n50", 8, "attn=eager") == "w-n50/bs8+attn=eager"
    assert key_of({"workload_id": "w-n50", "batch_size": 8, "variant": "token-sorted"}) == "w-n50/bs8+token-sorted"
    assert cell_sort_key("w-n50/bs16+token-sorted") == ("w", 50, 16, "token-sorted")
    assert sorted(["w-n50/bs16+token-sorted", "w-n50/bs16", "w-n50/bs8+token-sorted"], key=cell_sort_key) == [
        "w-n50/bs8+token-sorted",
        "w-n50/bs16",
        "w-n50/bs16+token-sorted",
    ]
