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


def load_jsonl_pairs(path: str | Path) -> list[Pair]:
    """Read user pairs from JSONL. Blank lines are skipped; anything else malformed is an error naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkloadError(f"{path}: no such file; pass a JSONL file where {_JSONL_SHAPE}") from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    pairs: list[Pair] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); {_JSONL_SHAPE}") from None
        if not isinstance(obj, dict):
            raise WorkloadError(f"{where}: expected a JSON object, got {type(obj).__name__}; {_JSONL_SHAPE}")
        for key in ("query", "document"):
            if key not in obj:
                raise WorkloadError(f"{where}: missing key {key!r}; {_JSONL_SHAPE}")
            if not isinstance(obj[key], str):
                raise WorkloadError(f"{where}: {key!r} must be a string, got {type(obj[key]).__name__}")
        pairs.append((obj["query"], obj["document"]))
    if not pairs:
        raise WorkloadError(f"{path}: contains no pairs; {_JSONL_SHAPE}")
    return pairs
