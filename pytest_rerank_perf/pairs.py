"""Query-document pairs: their type, the order ``CrossEncoder.predict`` batches them in, their encoded lengths,
the check every entry point runs on them, and reading them from a user's JSONL file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WorkloadError

__all__ = ["Pair", "check_pairs", "crossencoder_order", "encoded_lengths", "load_jsonl_pairs"]

Pair = tuple[str, str]


def crossencoder_order(pairs: Sequence[Pair]) -> list[int]:
    """The order in which ``CrossEncoder.predict`` batches pairs: longest *character* length first.

    Mirrors sentence-transformers' ``np.argsort([-len(q) - len(d)])`` call exactly, ties included.
    """
    return [int(i) for i in np.argsort([-(len(q) + len(d)) for q, d in pairs])]


def check_pairs(pairs: Any, caller: str) -> list[Pair]:
    """``pairs`` as a list of (query, document) str tuples; a TypeError naming ``caller`` and the bad item otherwise."""
    if pairs is None:
        raise TypeError(f"{caller}: pairs is None; pass a list of (query, document) pairs")
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise TypeError(f"{caller}: pairs must be a list of (query, document) pairs, got {type(pairs).__name__}")
    out = []
    for i, pair in enumerate(pairs):
        if (
            isinstance(pair, str | bytes)
            or not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(isinstance(t, str) for t in pair)
        ):
            raise TypeError(f"{caller}: pairs[{i}] is {pair!r}; each item must be a (query, document) pair of str")
        out.append((pair[0], pair[1]))
    return out


def encoded_lengths(tokenizer: Any, pairs: Sequence[Pair]) -> list[int]:
    """Untruncated encoded pair lengths, computed the way predict encodes (batched: an empty document still gets
    the pair template, which the single-pair call would drop)."""
    if not pairs:
        return []
    enc = tokenizer([q for q, _ in pairs], [d for _, d in pairs], truncation=False, verbose=False)
    return [len(ids) for ids in enc["input_ids"]]


_JSONL_SHAPE = 'each line must be a JSON object like {"query": "...", "document": "..."}'


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    """One text of a line, as the model can score it: a non-empty str of encodable characters."""
    if key not in obj:
        raise WorkloadError(f"{where}: missing key {key!r}; {_JSONL_SHAPE}")
    value = obj[key]
    if not isinstance(value, str):
        raise WorkloadError(f"{where}: {key!r} must be a string, got {type(value).__name__}; {_JSONL_SHAPE}")
    if not value.strip():
        raise WorkloadError(f"{where}: {key!r} is empty or whitespace only; the model cannot score it as given")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # an escaped lone surrogate ("\ud83d"): valid JSON, not text
        raise WorkloadError(
            f"{where}: {key!r} holds a lone surrogate {value[exc.start]!r} at character {exc.start} (half of an "
            "escaped emoji or other character); write the whole character or remove it"
        ) from None
    return value


def _lines(path: Path) -> list[str]:
    """The file's lines, split on \n only: U+2028, U+0085 and friends are valid inside JSON strings (and
    ``str.splitlines`` would split there). A UTF-8 BOM and CRLF endings are accepted."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise WorkloadError(f"{path}: no such file; pass a JSONL file where {_JSONL_SHAPE}") from None
    except IsADirectoryError:
        raise WorkloadError(f"{path}: is a directory; pass a JSONL file where {_JSONL_SHAPE}") from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    return [line.removesuffix("\r") for line in text.split("\n")]


def load_jsonl_pairs(path: str | Path) -> list[Pair]:
    """Read user pairs from JSONL. Blank lines are skipped; anything else malformed is an error naming the line."""
    path = Path(path)
    pairs: list[Pair] = []
    for lineno, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = exc.msg.removesuffix(" at")  # "Invalid control character at" + " at column": say it once
            raise WorkloadError(f"{where}: not valid JSON ({problem} at column {exc.colno}); {_JSONL_SHAPE}") from None
        if not isinstance(obj, dict):
            raise WorkloadError(f"{where}: expected a JSON object, got {type(obj).__name__}; {_JSONL_SHAPE}")
        pairs.append((_text(obj, "query", where), _text(obj, "document", where)))
    if not pairs:
        raise WorkloadError(f"{path}: contains no pairs; {_JSONL_SHAPE}")
    return pairs
