"""What the dynamic batcher is given and what it reports: its settings, its per-batch records, and the adapters
that turn a tokenizer, a ``CrossEncoder`` or a ``Reranker`` into the functions it calls.

The batcher calls its length (or prepare) function in its tokenizer thread and ``predict`` in its model worker, at
the same time. No adapter here lets the two share a tokenizer or a model unguarded (``guards``): a fast tokenizer
keeps its padding and truncation on the shared object, so two threads calling it hand each other their settings.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.guards import exclusive
from ..errors import RerankPerfError
from ..validation import positive_int
from ..workloads.pairs import Pair, encoded_lengths

__all__ = [
    "BatchRecord",
    "BatcherConfig",
    "BatcherStats",
    "BusyMeter",
    "LengthFn",
    "PredictFn",
    "PrepareFn",
    "Prepared",
    "cross_encoder_predict",
    "encoded_predict",
    "token_counter",
    "token_ids",
]

PredictFn = Callable[[list[Any]], Sequence[float]]  # one batch of payloads (pairs, or token ids) -> scores
LengthFn = Callable[[Sequence[Pair]], list[int]]
Prepared = tuple[Any, int]  # what predict is given for a pair, and the pair's token length
PrepareFn = Callable[[Sequence[Pair]], Sequence[Prepared]]


@dataclass(frozen=True)
class BatcherConfig:
    max_batch: int = 32  # pairs per model call
    max_wait_s: float = 0.005  # how long the oldest queued pair may wait for company
    max_tokens: int | None = None  # padded tokens per model call (pairs x longest pair); None: no budget
    length_aware: bool = True

    def __post_init__(self) -> None:
        positive_int(self.max_batch, f"max_batch {self.max_batch!r}", RerankPerfError)
        if not 0 <= self.max_wait_s < 60:
            raise RerankPerfError(f"max_wait_s {self.max_wait_s!r}: must be between 0 and 60 seconds, e.g. 0.005")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise RerankPerfError(f"max_tokens {self.max_tokens!r}: must be a positive token count or None")

    @property
    def id(self) -> str:
        budget = f"-t{self.max_tokens}" if self.max_tokens else ""
        return f"mb{self.max_batch}-w{self.max_wait_s * 1e3:g}ms{budget}{'' if self.length_aware else '-fifo'}"


@dataclass(frozen=True)
class BatchRecord:
    """One model call: what the batcher sent and how long its oldest pair had waited."""

    pairs: int
    requests: int
    real_tokens: int
    padded_tokens: int
    oldest_wait_s: float
    failed: bool = False


@dataclass
class BatcherStats:
    batches: list[BatchRecord] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return sum(b.pairs for b in self.batches)

    @property
    def mean_batch(self) -> float:
        return self.pairs / len(self.batches) if self.batches else 0.0

    @property
    def padding_fraction(self) -> float:
        padded = sum(b.padded_tokens for b in self.batches)
        return 1 - sum(b.real_tokens for b in self.batches) / padded if padded else 0.0


def token_counter(tokenizer: Any, max_length: int | None) -> LengthFn:
    """Encoded pair lengths as the model sees them (truncated to ``max_length``): what padding is made of.

    It counts with a copy of ``tokenizer`` made here, once, that nothing else uses: ``predict`` tokenizes with the
    original in the worker thread, and counting never waits for its forward pass. One copy per counter, not per
    thread: ~60 ms for the tiny twin's tokenizer, ~0.75 s and ~100 MB for a 250k-piece vocabulary like
    bge-reranker-v2-m3's. Calls from several threads take turns on it."""
    with exclusive(tokenizer):  # copying reads its settings: not while another thread sets them
        try:
            own = copy.deepcopy(tokenizer)
        except Exception as exc:
            raise RerankPerfError(
                f"token_counter: the tokenizer cannot be copied ({type(exc).__name__}: {exc}); it counts with a "
                "copy so that no tokenizer is shared between threads. Use prepare=token_ids(model) instead."
            ) from exc
    turn = exclusive(own)

    def count(pairs: Sequence[Pair]) -> list[int]:
        with turn:
            lengths = encoded_lengths(own, pairs)
        return [min(n, max_length) for n in lengths] if max_length else lengths

    return count


def cross_encoder_predict(cross_encoder: Any) -> PredictFn:
    """One model call per batch: the batcher already chose the batch, so ``predict`` must not split it again.
    ``predict`` tokenizes too: it holds the model's lock, then its tokenizer's."""

    def predict(pairs: list[Pair]) -> Sequence[float]:
        with exclusive(cross_encoder), exclusive(cross_encoder.tokenizer):
            return cross_encoder.predict(pairs, batch_size=len(pairs), show_progress_bar=False)

    return predict


def token_ids(model: Any) -> PrepareFn:
    """Tokenize once: each pair's input ids (``Reranker.encode``, truncated as the model sees them) and its length.
    A ``Reranker`` guards what its methods share, so this runs beside ``encoded_predict`` on the same model."""

    def prepare(pairs: Sequence[Pair]) -> list[Prepared]:
        return [(ids, len(ids)) for ids in model.encode(pairs)]

    return prepare


def encoded_predict(model: Any) -> PredictFn:
    """One model call per batch of token ids (``Reranker.predict_encoded``): no second tokenization."""

    def predict(encoded: list[Any]) -> Sequence[float]:
        return model.predict_encoded(encoded, len(encoded))

    return predict


class BusyMeter:
    """Seconds spent inside a wrapped callable (the model worker): busy / wall time says whether a server's rate
    was bound by its model or by the host around it."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds += time.perf_counter() - start  # one worker thread: no concurrent update

        return timed
