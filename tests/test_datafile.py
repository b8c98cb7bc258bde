"""A user's data file: both shapes read strictly (file:line in every error), its content id, its workloads, the
num_pairs axis over it, and its data profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.errors import UsageError, WorkloadError
from pytest_rerank_perf.measurements.data_profile import DataProfile, DataProfiles, nearest_rank
from pytest_rerank_perf.workloads.datafile import read_data_file
from pytest_rerank_perf.workloads.file_workload import file_workload, num_pairs_axis, open_data_file
from pytest_rerank_perf.workloads.pairs import encoded_lengths

REQUESTS = [
    {"query": "how do I update the GPU driver?", "documents": ["Open the control panel.", "Reboot.", "不相关"]},
    {"query": "退货政策是什么？", "documents": ["七天无理由退货。", "Returns within 30 days."]},
]


def _write(tmp_path: Path, rows: list[Any] | str, name: str = "data.jsonl") -> Path:
    text = rows if isinstance(rows, str) else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_a_requests_file_is_read_as_requests(tmp_path: Path) -> None:
    data = read_data_file(_write(tmp_path, REQUESTS))
    assert data.shape == "requests"
    assert data.request_sizes == (3, 2)
    assert data.pairs[3] == ("退货政策是什么？", "七天无理由退货。")
    assert data.id.startswith("requests-")


def test_a_flat_file_is_read_as_pairs(tmp_path: Path) -> None:
    data = read_data_file(_write(tmp_path, [{"query": "q", "document": "d1"}, {"query": "q", "document": "d2"}]))
    assert data.shape == "pairs"
    assert data.pairs == (("q", "d1"), ("q", "d2"))
    assert data.request_sizes == (1, 1)


def test_the_id_follows_the_content_not_the_name_or_the_bytes(tmp_path: Path) -> None:
    """A renamed copy saved with a BOM and CRLF is the same data; one changed character is other data."""
    plain = read_data_file(_write(tmp_path, REQUESTS))
    text = "\ufeff" + "\r\n".join(json.dumps(r, ensure_ascii=False) for r in REQUESTS) + "\r\n"
    copy = read_data_file(_write(tmp_path, text, "renamed.jsonl"))
    assert copy.id == plain.id
    edited = [REQUESTS[0], {**REQUESTS[1], "documents": ["七天无理由退货。", "Returns within 31 days."]}]
    assert read_data_file(_write(tmp_path, edited, "edited.jsonl")).id != plain.id
    flat = [{"query": q, "document": d} for q, d in plain.pairs]  # the same pairs, not the same requests
    assert read_data_file(_write(tmp_path, flat, "flat.jsonl")).id != plain.id


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([REQUESTS[0], {"query": "q", "document": "d"}], r"data.jsonl:2: a pair line in a file of requests \(line 1"),
        ([{"query": "q", "document": "d"}, REQUESTS[0]], r"data.jsonl:2: a request line in a file of pairs \(line 1"),
        ([REQUESTS[0], {"query": "q", "documents": []}], r"data.jsonl:2: 'documents' must be a non-empty list.*empty"),
        ([{"query": "q", "documents": "d"}], r"data.jsonl:1: 'documents' must be a non-empty list of strings, got str"),
        ([{"query": "q", "documents": ["a", "b", " "]}], r"data.jsonl:1: 'documents'\[2\] is empty or whitespace"),
        ([{"query": "q", "documents": ["a", 7]}], r"data.jsonl:1: 'documents'\[1\] must be a string, got int"),
        ([{"query": "q", "document": "d", "documents": ["d"]}], r"data.jsonl:1: has both 'document' and 'documents'"),
        ([{"document": "d"}], r"data.jsonl:1: missing key 'query'"),
        ([{"query": "q", "text": "d"}], r"data.jsonl:1: missing key 'document' \(a pair\) or 'documents'"),
        ([REQUESTS[0], {"query": "q"}], r"data.jsonl:2: missing key 'documents'"),
        ([REQUESTS[0], "\n", {"query": "q"}], r"data.jsonl:3: missing key 'documents'"),
    ],
)
def test_every_bad_line_is_named_with_its_line_and_the_expected_shape(
    tmp_path: Path, rows: list[Any], message: str
) -> None:
    if "\n" in rows:  # a blank line in the middle still counts
        text = "".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows)
        path = _write(tmp_path, text)
    else:
        path = _write(tmp_path, rows)
    with pytest.raises(WorkloadError, match=message) as caught:
        read_data_file(path)
    assert "at at" not in str(caught.value)
    if "must be" in message or "missing" in message or "a pair line" in message:
        assert "one shape per file" in str(caught.value)  # the expected shapes, both


@pytest.mark.parametrize("text", ["\u200b", "\x00", " \u200b\t", "\ufeff"])
def test_invisible_only_texts_are_rejected(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, [REQUESTS[0], {"query": "q", "documents": ["a", text]}])
    with pytest.raises(WorkloadError, match=r"data.jsonl:2: 'documents'\[1\] is empty or whitespace only \(or only"):
        read_data_file(path)


def test_a_lone_carriage_return_is_whitespace_inside_a_line(tmp_path: Path) -> None:
    """JSON allows \r between tokens; only \n ends a JSONL line (read_text's universal newlines split there)."""
    data = read_data_file(_write(tmp_path, '{"query": "q",\r "document": "a"}\n{"query": "q2", "document": "b"}\n'))
    assert data.pairs == (("q", "a"), ("q2", "b"))


def test_a_lone_surrogate_in_a_document_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"query": "q", "documents": ["ok"]}\n{"query": "q", "documents": ["a", "\\udc00b"]}\n')
    with pytest.raises(WorkloadError, match=r"data.jsonl:2: 'documents'\[1\] holds a lone surrogate"):
        read_data_file(path)


def test_an_unreadable_file_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, REQUESTS)

    def denied(*_: Any, **__: Any) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(WorkloadError, match=r"data.jsonl: permission denied; make the file readable"):
        read_data_file(path)


def test_the_option_reads_the_file_once_and_turns_errors_into_usage_errors(tmp_path: Path) -> None:
    _write(tmp_path, [{"query": "q", "documents": []}])
    with pytest.raises(UsageError, match=r"--rerank-workload: .*data.jsonl:1: 'documents' must be"):
        open_data_file("data.jsonl", tmp_path, None)
    with pytest.raises(UsageError, match=r"--rerank-workload: .*absent.jsonl: no such file"):
        open_data_file("absent.jsonl", tmp_path, None)


def test_the_num_pairs_axis_over_a_file(tmp_path: Path) -> None:
    requests = read_data_file(_write(tmp_path, REQUESTS))
    assert num_pairs_axis(requests, None, (10, 50)) == (5,)  # every request, each one call
    with pytest.raises(
        UsageError, match=r"--rerank-num-pairs \(or ini rerank_num_pairs\) does not apply to .*rerank requests.*drop it"
    ):
        num_pairs_axis(requests, (2,), (10,))
    flat = read_data_file(_write(tmp_path, [{"query": "q", "document": f"d{i}"} for i in range(30)], "flat.jsonl"))
    assert num_pairs_axis(flat, None, (10, 50, 200)) == (10,)  # defaults beyond the file are left out
    assert num_pairs_axis(flat, None, (50, 200)) == (30,)  # none fits: the whole file
    with pytest.raises(UsageError, match=r"--rerank-num-pairs 40: .*flat.jsonl holds only 30 pairs"):
        num_pairs_axis(flat, (10, 40), ())


def test_a_requests_workload_is_one_call_per_request(tmp_path: Path, tiny_tokenizer: Any) -> None:
    data = read_data_file(_write(tmp_path, REQUESTS))
    work = file_workload(data, encoded_lengths(tiny_tokenizer, data.pairs), 5)
    assert work.id == f"{data.id}-n5"
    assert work.num_pairs == 5
    assert work.call_slices() == [(0, 3), (3, 5)]
    assert [b for b, _ in work.batch_shapes(2)] == [2, 1, 2]  # batches never span two requests


def test_a_flat_workload_takes_whole_consecutive_chunks(tmp_path: Path, tiny_tokenizer: Any) -> None:
    rows = [{"query": "q", "document": "word " * (i + 1)} for i in range(25)]
    data = read_data_file(_write(tmp_path, rows))
    work = file_workload(data, encoded_lengths(tiny_tokenizer, data.pairs), 10)
    assert work.id == f"{data.id}-n10"
    assert work.num_pairs == 10
    assert work.pairs == tuple(data.pairs[:20])  # the last 5 are not a whole chunk
    assert work.call_slices() == [(0, 10), (10, 20)]
    # padding is per call: the long second chunk never pads the short first one
    (first, second) = [work.batch_shapes(10)[i][1] for i in (0, 1)]
    assert first < second


def test_nearest_rank_is_a_length_some_pair_has() -> None:
    values = list(range(1, 101))
    assert [nearest_rank(values, q) for q in (0.5, 0.9, 0.99)] == [50, 90, 99]
    assert nearest_rank([7], 0.99) == 7


def _profile(lengths: list[int], max_length: int = 512, limit: int | None = 8192) -> DataProfile:
    return DataProfile.of("requests-abc", "data.jsonl", "requests", lengths, [len(lengths)], max_length, limit)


def test_the_profile_counts_what_max_length_cuts() -> None:
    profile = _profile([100] * 96 + [600, 700, 800, 2000])
    assert (profile.truncated_pairs, profile.truncated_tokens) == (4, 88 + 188 + 288 + 1488)
    assert profile.lengths["p99"] == 800
    assert profile.lengths["max"] == 2000
    warning = profile.warning()
    assert warning is not None
    assert "cuts 4 of 100 pairs (4.0%)" in warning
    assert "--rerank-max-length 800 would cover p99" in warning
    assert sum(profile.histogram["counts"]) == 100


def test_a_few_cut_pairs_are_reported_but_not_warned_about() -> None:
    profile = _profile([100] * 97 + [600, 700, 800])
    assert profile.truncated_pairs == 3
    assert profile.warning() is None
    assert "cuts 3 pairs (3.0%)" in profile.lines()[1]


def test_a_flat_profile_says_what_each_chunk_size_leaves_out() -> None:
    profile = DataProfile.of("pairs-abc", "p.jsonl", "pairs", [10] * 25, [1] * 25, 512)
    profile = profile.with_padding(10, {1: 0.0}).with_padding(20, {1: 0.0})
    assert profile.lines()[-1] == "  chunks per round: 2 calls of 10, 5 pairs left out; 1 calls of 20, 5 pairs left out"


def test_a_p99_beyond_the_model_says_to_chunk() -> None:
    warning = _profile([100] * 90 + [9000] * 10, limit=8192).warning()
    assert warning is not None
    assert "p99 is 9000 tokens, beyond the 8192 the model takes" in warning


def test_profiles_merge_their_padding_rows_and_survive_the_report() -> None:
    a = _profile([100, 200]).with_padding(10, {1: 0.0, 4: 0.25})
    b = _profile([100, 200]).with_padding(50, {1: 0.0, 4: 0.1})
    merged = DataProfiles({"requests-abc": a}).merge(DataProfiles({"requests-abc": b}))
    again = DataProfiles.from_report(merged.report_fields())
    assert again is not None
    assert again.profiles["requests-abc"].padding == {"10": {"1": 0.0, "4": 0.25}, "50": {"1": 0.0, "4": 0.1}}
    table = again.profiles["requests-abc"].padding_table().text()
    assert table[0].split() == ["padding", "added", "bs1", "bs4"]
    assert table[2].split() == ["10", "pairs", "0%", "25%"]
