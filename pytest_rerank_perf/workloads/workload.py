"""Workloads defined in tokens: seeded query-document pairs that hit requested token lengths exactly.

Speed and memory depend on token counts, not on text, so a workload is specified as a distribution of *encoded
pair* lengths (``<s> q </s></s> d </s>``: special tokens included) and rendered into text under the active
tokenizer. The target lengths depend only on the seed, so the real model and its twin see the same token counts
even though their tokenizers split words differently.

The length distributions live in ``lengths`` and the pair helpers in ``pairs``; both are re-exported here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import WorkloadError
from ..validation import positive_int
from .batch_plans import BatchPlan, predict_plan
from .datafile import load_jsonl_pairs
from .lengths import Fixed, LengthDist, LongTail, Uniform, parse_length_dist
from .lexicon import SCRIPTS
from .pairs import Pair, check_pairs, crossencoder_order, encoded_lengths

__all__ = [
    "Fixed",
    "LengthDist",
    "LongTail",
    "Pair",
    "TokenStats",
    "Uniform",
    "Workload",
    "WorkloadSpec",
    "build_workload",
    "check_pairs",
    "crossencoder_order",
    "encoded_lengths",
    "load_jsonl_pairs",
    "parse_length_dist",
    "workload_from_pairs",
]

_MAX_FIXUPS = 256


@dataclass(frozen=True)
class WorkloadSpec:
    """A seeded recipe. ``pair_tokens`` counts the whole encoded pair, special tokens included."""

    pair_tokens: LengthDist
    query_tokens: LengthDist = field(default_factory=lambda: Uniform(8, 24))
    scripts: tuple[str, ...] = ("latin", "cjk")
    docs_per_query: int | None = None  # None: one query reranks all documents, as in one RAG request
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [s for s in self.scripts if s not in SCRIPTS]
        if not self.scripts or unknown:
            raise WorkloadError(f"scripts {list(self.scripts)}: choose from {sorted(SCRIPTS)}")
        if self.docs_per_query is not None:
            positive_int(self.docs_per_query, "docs_per_query", WorkloadError)

    @property
    def id(self) -> str:
        dpq = "all" if self.docs_per_query is None else str(self.docs_per_query)
        return f"{self.pair_tokens.id}-q{self.query_tokens.id}-{'+'.join(self.scripts)}-d{dpq}-s{self.seed}"

    @property
    def label(self) -> str:
        """The id's parts that differ from the default recipe: ``fixed256``, ``fixed256-s3`` (test ids)."""
        default = WorkloadSpec(self.pair_tokens)
        parts = [self.pair_tokens.id]
        if self.query_tokens != default.query_tokens:
            parts.append(f"q{self.query_tokens.id}")
        if self.scripts != default.scripts:
            parts.append("+".join(self.scripts))
        if self.docs_per_query is not None:
            parts.append(f"d{self.docs_per_query}")
        return "-".join([*parts, f"s{self.seed}"] if self.seed else parts)


@dataclass(frozen=True)
class TokenStats:
    """What a batching of the workload costs: real tokens are the model's input, padded tokens its work."""

    num_pairs: int
    batch_size: int
    batches: int
    real_tokens: int
    padded_tokens: int
    max_batch_tokens: int  # padded tokens of the largest batch: what peak activation memory scales with

    @property
    def padding_fraction(self) -> float:
        return 0.0 if self.padded_tokens == 0 else 1.0 - self.real_tokens / self.padded_tokens


@dataclass(frozen=True)
class Workload:
    """Pairs and their encoded lengths, and how the measured callable splits them into predict calls.

    A seeded workload is one call of every pair; a data file's is one call per request (``shape="requests"``) or
    consecutive chunks of ``num_pairs`` pairs (``shape="pairs"``): a measured round makes every call in turn.
    """

    id: str  # ends in -n<num_pairs>: cell keys are "<id>/bs<B>"
    pairs: tuple[Pair, ...]
    token_lengths: tuple[int, ...]  # encoded pair lengths under the tokenizer it was built with, untruncated
    calls: tuple[int, ...] = ()  # pairs per predict call, in order; () is one call of every pair
    shape: Literal["seeded", "pairs", "requests"] = "seeded"

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def num_pairs(self) -> int:
        """The matrix's num_pairs axis: pairs per call for chunks of a flat file, every pair otherwise."""
        return self.calls[0] if self.shape == "pairs" and self.calls else len(self.pairs)

    def call_slices(self) -> list[tuple[int, int]]:
        """(start, stop) of each predict call of a round."""
        sizes = self.calls or (len(self.pairs),)
        bounds = list(itertools.accumulate(sizes, initial=0))
        return list(itertools.pairwise(bounds))

    def truncated_lengths(self, max_length: int | None) -> list[int]:
        return [min(n, max_length) if max_length else n for n in self.token_lengths]

    def real_tokens(self, max_length: int | None = None) -> int:
        return sum(self.truncated_lengths(max_length))

    def batch_shapes(
        self, batch_size: int, max_length: int | None = None, plan: BatchPlan | None = None
    ) -> list[tuple[int, int]]:
        """(pairs, padded length) of each batch a round's predict calls run: ``CrossEncoder.predict``'s order, or
        ``plan(pairs, lengths, batch_size)``, a backend's own (``Reranker.batches``)."""
        lengths = self.truncated_lengths(max_length)
        shapes = []
        for first, stop in self.call_slices():
            call = lengths[first:stop]
            batches = (
                plan(self.pairs[first:stop], call, batch_size)
                if plan
                else predict_plan(self.pairs[first:stop], batch_size)
            )
            shapes += [(len(batch), max(call[i] for i in batch)) for batch in batches]
        return shapes

    def batch_stats(self, batch_size: int, max_length: int | None = None, plan: BatchPlan | None = None) -> TokenStats:
        """Tokens of a round's predict calls: same order, same padding to the longest of each batch."""
        shapes = self.batch_shapes(batch_size, max_length, plan)
        costs = [b * n for b, n in shapes]
        return TokenStats(
            len(self.pairs), batch_size, len(shapes), self.real_tokens(max_length), sum(costs), max(costs, default=0)
        )


class _TextMaker:
    """Renders token counts into text under one tokenizer: greedy word choice, then exact fix-up by measuring."""

    def __init__(self, tokenizer: Any, rng: random.Random) -> None:
        self.tokenizer = tokenizer
        self.rng = rng
        self.specials = int(tokenizer.num_special_tokens_to_add(pair=True))
        self._cost: dict[str, int] = {}
        self._fillers: dict[str, list[str]] = {}

    def cost(self, word: str) -> int:
        if word not in self._cost:
            self._cost[word] = len(self.tokenizer(word, add_special_tokens=False)["input_ids"])
        return self._cost[word]

    def fillers(self, script: str) -> list[str]:
        """Words of exactly one token: the unit steps that make exact lengths reachable."""
        if script not in self._fillers:
            ones = [w for w in SCRIPTS[script] if self.cost(w) == 1]
            ones = ones or [c for c in "aeiostnrxyz" if self.cost(c) == 1]
            if not ones:
                raise WorkloadError(
                    "the tokenizer maps no built-in word to a single token, so exact token lengths are unreachable"
                )
            self._fillers[script] = ones
        return self._fillers[script]

    def words(self, n_tokens: int, script: str) -> list[str]:
        pool = SCRIPTS[script]
        out: list[str] = []
        remaining = n_tokens
        while remaining > 0:
            word = self.rng.choice(pool)
            if self.cost(word) > remaining:
                word = self.rng.choice(self.fillers(script))
            out.append(word)
            remaining -= self.cost(word)
        return out

    def fit(self, words: list[str], target: int, measure: Any, script: str) -> list[str]:
        """Append one-token words or drop trailing words until ``measure(words) == target``."""
        for _ in range(_MAX_FIXUPS):
            got = measure(words)
            if got == target:
                return words
            if got < target:
                words = [*words, self.rng.choice(self.fillers(script))]
            elif len(words) > 1:
                words = words[:-1]
            else:
                break
        raise WorkloadError(f"could not render exactly {target} tokens with this tokenizer (got {measure(words)})")

    def query(self, n_tokens: int, script: str) -> str:
        def measure(ws: list[str]) -> int:
            return len(self.tokenizer(" ".join(ws), add_special_tokens=False)["input_ids"])

        return " ".join(self.fit(self.words(n_tokens, script), n_tokens, measure, script))

    def document(self, query: str, pair_tokens: int, script: str) -> str:
        q_tokens = len(self.tokenizer(query, add_special_tokens=False)["input_ids"])

        def measure(ws: list[str]) -> int:
            return encoded_lengths(self.tokenizer, [(query, " ".join(ws))])[0]

        words = self.words(pair_tokens - q_tokens - self.specials, script)
        return " ".join(self.fit(words, pair_tokens, measure, script))


def build_workload(spec: WorkloadSpec, tokenizer: Any, num_pairs: int) -> Workload:
    """``num_pairs`` pairs whose encoded lengths equal the lengths drawn from ``spec.pair_tokens``, exactly."""
    positive_int(num_pairs, "num_pairs", WorkloadError)
    # Separate streams: target lengths depend only on the seed, never on how a tokenizer splits words.
    length_rng = random.Random(spec.seed)
    text_rng = random.Random(spec.seed + 1_000_003)
    maker = _TextMaker(tokenizer, text_rng)
    targets = spec.pair_tokens.sample(length_rng, num_pairs)
    shortest = maker.specials + 2  # one query token and one document token at least
    if min(targets) < shortest:
        raise WorkloadError(
            f"pair length {min(targets)} is too short: a pair needs {maker.specials} special tokens plus at least "
            f"one query and one document token ({shortest} in all)"
        )
    group = spec.docs_per_query or num_pairs
    pairs: list[Pair] = []
    for g, start in enumerate(range(0, num_pairs, group)):
        chunk = targets[start : start + group]
        q_script = spec.scripts[g % len(spec.scripts)]
        # The query must leave room for a one-token document in the shortest pair of its group.
        q_len = min(spec.query_tokens.sample(length_rng, 1)[0], min(chunk) - maker.specials - 1)
        query = maker.query(q_len, q_script)
        for target in chunk:
            pairs.append((query, maker.document(query, target, text_rng.choice(spec.scripts))))
    lengths = encoded_lengths(tokenizer, pairs)
    if lengths != targets:  # cannot happen unless the tokenizer is context-dependent across pairs
        raise WorkloadError("rendered pairs do not hit their target lengths; the tokenizer is not deterministic")
    return Workload(f"{spec.id}-n{num_pairs}", tuple(pairs), tuple(lengths))


def workload_from_pairs(pairs: Iterable[Pair], tokenizer: Any, name: str) -> Workload:
    items = tuple((str(q), str(d)) for q, d in pairs)
    if not items:
        raise WorkloadError(f"workload {name!r} has no pairs")
    digest = hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()[:10]
    return Workload(f"{name}-{digest}-n{len(items)}", items, tuple(encoded_lengths(tokenizer, items)))
