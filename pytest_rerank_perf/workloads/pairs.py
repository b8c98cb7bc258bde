"""Query-document pairs: their type, the order ``CrossEncoder.predict`` batches them in, their encoded lengths,
and the check every entry point runs on them (``datafile`` reads them from a user's JSONL file)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Pair", "check_pairs", "crossencoder_order", "encoded_lengths"]

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
