from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.errors import WorkloadError
from pytest_rerank_perf.workloads.workload import (
    Fixed,
    LongTail,
    Uniform,
    WorkloadSpec,
    build_workload,
    encoded_lengths,
    load_jsonl_pairs,
    parse_length_dist,
    workload_from_pairs,
)

CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7a3]")


@pytest.mark.parametrize("dist", [Fixed(6), Fixed(7), Fixed(128), Fixed(1000), Uniform(6, 300), LongTail()])
def test_pairs_hit_requested_lengths_exactly(tiny_tokenizer: Any, dist: Any) -> None:
    spec = WorkloadSpec(dist, seed=3)
    work = build_workload(spec, tiny_tokenizer, 40)
    assert list(work.token_lengths) == dist.sample(__import__("random").Random(3), 40)
    # Independent check, one pair at a time through the batched (predict-style) encoding.
    for (q, d), n in zip(work.pairs, work.token_lengths, strict=True):
        assert encoded_lengths(tiny_tokenizer, [(q, d)]) == [n]


def test_pair_length_counts_the_four_special_tokens(tiny_tokenizer: Any) -> None:
    work = build_workload(WorkloadSpec(Fixed(64)), tiny_tokenizer, 5)
    for q, d in work.pairs:
        q_ids = tiny_tokenizer(q, add_special_tokens=False)["input_ids"]
        d_ids = tiny_tokenizer(d, add_special_tokens=False)["input_ids"]
        assert len(q_ids) + len(d_ids) + 4 == 64  # <s> q </s></s> d </s>


def test_lengths_match_what_the_cross_encoder_feeds_the_model(tiny_model: CrossEncoderReranker) -> None:
    work = build_workload(WorkloadSpec(Uniform(10, 200), seed=7), tiny_model.tokenizer, 16)
    features = tiny_model.cross_encoder.preprocess(list(work.pairs))
    assert features["attention_mask"].sum(dim=1).tolist() == list(work.token_lengths)


def test_too_short_pair_is_an_error(tiny_tokenizer: Any) -> None:
    with pytest.raises(WorkloadError, match=r"too short.*4 special tokens"):
        build_workload(WorkloadSpec(Fixed(5)), tiny_tokenizer, 3)


def test_seeded_and_deterministic(tiny_tokenizer: Any) -> None:
    spec = WorkloadSpec(Uniform(20, 120), seed=11)
    a = build_workload(spec, tiny_tokenizer, 30)
    assert a == build_workload(spec, tiny_tokenizer, 30)
    b = build_workload(WorkloadSpec(Uniform(20, 120), seed=12), tiny_tokenizer, 30)
    assert a.pairs != b.pairs
    assert a.id != b.id


def test_target_lengths_do_not_depend_on_the_tokenizer(tiny_tokenizer: Any) -> None:
    """A character-level vocabulary splits every word differently; the workload's token counts stay the same."""
    from transformers import XLMRobertaTokenizer

    from pytest_rerank_perf.backends.twin import SPM_SPACE, _charset

    chars = [(piece, -5.0) for ch in _charset(False) for piece in (SPM_SPACE + ch, ch)]
    char_tok = XLMRobertaTokenizer(
        vocab=[(t, 0.0) for t in ("<s>", "<pad>", "</s>", "<unk>")] + chars + [("<mask>", 0.0)]
    )
    spec = WorkloadSpec(LongTail(), seed=5)
    a = build_workload(spec, tiny_tokenizer, 25)
    b = build_workload(spec, char_tok, 25)
    assert a.token_lengths == b.token_lengths
    assert a.pairs != b.pairs
    assert sum(len(d) for _, d in b.pairs) < sum(len(d) for _, d in a.pairs)  # more tokens per character


def test_scripts_are_honoured(tiny_tokenizer: Any) -> None:
    cjk = build_workload(WorkloadSpec(Fixed(48), scripts=("cjk",)), tiny_tokenizer, 6)
    latin = build_workload(WorkloadSpec(Fixed(48), scripts=("latin",)), tiny_tokenizer, 6)
    assert all(CJK.search(d) for _, d in cjk.pairs)
    assert not any(CJK.search(q + d) for q, d in latin.pairs)
    # Same tokens, far fewer characters: this is what changes CrossEncoder's character-length ordering.
    assert sum(len(d) for _, d in cjk.pairs) < sum(len(d) for _, d in latin.pairs)
    with pytest.raises(WorkloadError, match="choose from"):
        WorkloadSpec(Fixed(48), scripts=("klingon",))


def test_queries_are_shared_per_group(tiny_tokenizer: Any) -> None:
    work = build_workload(WorkloadSpec(Fixed(64), docs_per_query=4), tiny_tokenizer, 10)
    queries = [q for q, _ in work.pairs]
    assert len(set(queries[:4])) == 1
    assert len(set(queries)) == 3
    single = build_workload(WorkloadSpec(Fixed(64)), tiny_tokenizer, 10)
    assert len({q for q, _ in single.pairs}) == 1


def test_tokens_scale_with_the_workload(tiny_tokenizer: Any) -> None:
    small = build_workload(WorkloadSpec(Fixed(100)), tiny_tokenizer, 50)
    large = build_workload(WorkloadSpec(Fixed(100)), tiny_tokenizer, 100)
    assert large.batch_stats(8).real_tokens == 2 * small.batch_stats(8).real_tokens == 10_000


def test_fixed_lengths_need_no_padding_but_mixed_ones_do(tiny_tokenizer: Any) -> None:
    fixed = build_workload(WorkloadSpec(Fixed(100)), tiny_tokenizer, 20).batch_stats(8)
    assert fixed.padded_tokens == fixed.real_tokens == 2000
    assert (fixed.batches, fixed.max_batch_tokens, fixed.padding_fraction) == (3, 800, 0.0)
    mixed = build_workload(WorkloadSpec(Uniform(10, 300)), tiny_tokenizer, 20)
    assert mixed.batch_stats(1).padded_tokens == mixed.real_tokens()
    assert mixed.batch_stats(8).padded_tokens > mixed.real_tokens()


def test_truncation_caps_real_tokens(tiny_tokenizer: Any) -> None:
    work = build_workload(WorkloadSpec(Fixed(300)), tiny_tokenizer, 4)
    assert work.real_tokens(128) == 4 * 128
    assert work.batch_stats(2, max_length=128).padded_tokens == 512


def test_padded_tokens_equal_what_predict_actually_runs(tiny_model: CrossEncoderReranker) -> None:
    """Record the shapes the model really sees during predict and compare with batch_stats."""
    ce = tiny_model.cross_encoder
    work = build_workload(
        WorkloadSpec(LongTail(median=60, low=8, high=400), scripts=("latin", "cjk"), seed=2), tiny_model.tokenizer, 37
    )
    seen: list[tuple[int, ...]] = []

    def record(_module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.append(tuple(ids.shape))

    hook = ce.model.base_model.embeddings.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.inference_mode():
            ce.predict(list(work.pairs), batch_size=8)
    finally:
        hook.remove()
    stats = work.batch_stats(8, max_length=512)
    assert sum(b * n for b, n in seen) == stats.padded_tokens
    assert len(seen) == stats.batches
    assert max(b * n for b, n in seen) == stats.max_batch_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("128", Fixed(128)),
        ("fixed:64", Fixed(64)),
        ("uniform:10-20", Uniform(10, 20)),
        ("longtail", LongTail()),
        ("longtail:200", LongTail(200)),
    ],
)
def test_parse_length_dist(text: str, expected: object) -> None:
    assert parse_length_dist(text) == expected


@pytest.mark.parametrize("text", ["", "fixed", "fixed:0", "uniform:20-10", "uniform:5", "gauss:3", "longtail:5000"])
def test_parse_length_dist_rejects_nonsense(text: str) -> None:
    with pytest.raises(WorkloadError):
        parse_length_dist(text)


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_jsonl_pairs_load(tmp_path: Path, tiny_tokenizer: Any) -> None:
    path = _write(tmp_path, '{"query": "q1", "document": "d1"}\n\n{"query": "检索", "document": "文档", "id": 7}\n')
    pairs = load_jsonl_pairs(path)
    assert pairs == [("q1", "d1"), ("检索", "文档")]
    work = workload_from_pairs(pairs, tiny_tokenizer, "mine")
    assert work.id.startswith("mine-")
    assert work.id.endswith("-n2")
    assert list(work.token_lengths) == encoded_lengths(tiny_tokenizer, pairs)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"query": "q", "document": "d"}\n{"query": "q", "document": }\n', r"pairs.jsonl:2: not valid JSON"),
        ('["q", "d"]\n', r"pairs.jsonl:1: expected a JSON object, got list"),
        ('{"query": "q"}\n', r"pairs.jsonl:1: missing key 'document'"),
        ('{"query": "q", "document": 3}\n', r"pairs.jsonl:1: 'document' must be a string, got int"),
        ("\n  \n", r"contains no pairs"),
        (b'{"query": "\xff", "document": "d"}', r"not UTF-8"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path: Path, content: str | bytes, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        load_jsonl_pairs(_write(tmp_path, content))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"query": "q", "document": "d"}\n{"query": "", "document": "d"}\n', r"pairs.jsonl:2: 'query' is empty"),
        ('{"query": "q", "document": " \\t\\n "}\n', r"pairs.jsonl:1: 'document' is empty or whitespace only"),
        (
            '{"query": "q", "document": "d"}\n\n{"query": "\\ud83d", "document": "d"}\n',
            r"pairs.jsonl:3: 'query' holds a lone surrogate",
        ),
        (
            '{"query": "q", "document": "a\tb"}\n',
            r"pairs.jsonl:1: not valid JSON \(Invalid control character at column",
        ),
    ],
)
def test_texts_the_model_cannot_score_are_rejected_with_their_line(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        load_jsonl_pairs(_write(tmp_path, content))


def test_jsonl_lines_split_on_newline_only_with_bom_and_crlf(tmp_path: Path) -> None:
    """json.dumps(ensure_ascii=False) leaves U+2028 and U+0085 raw inside strings: they are not line breaks."""
    rows = [{"query": "问题\u2028two", "document": "doc\u0085x"}, {"query": "q2", "document": "d2"}]
    text = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    pairs = load_jsonl_pairs(_write(tmp_path, "\ufeff" + text))
    assert pairs == [("问题\u2028two", "doc\u0085x"), ("q2", "d2")]
    bad = text + '{"query": "q3"}\n'
    with pytest.raises(WorkloadError, match=r"pairs.jsonl:3: missing key 'document'"):  # line numbers still right
        load_jsonl_pairs(_write(tmp_path, bad))


def test_missing_jsonl_file(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="no such file"):
        load_jsonl_pairs(tmp_path / "absent.jsonl")
