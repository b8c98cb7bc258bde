"""The dynamic batcher's intake: each request's pairs turned once into what the model takes, off the event loop,
and the queue entries they become.

``prepare(pairs) -> [(payload, token length)]`` runs in a thread of its own (tokenization holds the GIL for a
while, but the event loop gets it back between requests instead of waiting for every tokenizer call); without a
``prepare`` the payload is the pair and its length its character count, cheap enough to take inline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import RerankPerfError
from ..workloads.pairs import Pair
from .batcher_config import LengthFn, Prepared, PrepareFn


def char_lengths(pairs: Sequence[Pair]) -> list[Prepared]:
    return [((q, d), len(q) + len(d)) for q, d in pairs]


def by_lengths(lengths: LengthFn) -> PrepareFn:
    """The older form: payloads are the pairs, lengths from ``lengths``."""
    return lambda pairs: list(zip(pairs, lengths(pairs), strict=True))


@dataclass
class Request:
    """A caller's request while its pairs are queued or in flight."""

    future: asyncio.Future[np.ndarray]
    scores: np.ndarray
    remaining: int


@dataclass
class QueuedPair:
    seq: int  # arrival order: the oldest pair anchors the next batch
    request: Request
    index: int  # position in the request's own list
    payload: object  # what predict is given for this pair: the pair, or its token ids (``prepare``)
    tokens: int
    enqueued: float


class Intake:
    """Runs ``prepare`` in a one-thread pool between ``start`` and ``shutdown``; inline character counts without."""

    def __init__(self, prepare: PrepareFn | None) -> None:
        self.prepare = prepare
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self.prepare is not None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank-tokenizer")

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    async def __call__(self, pairs: list[Pair]) -> list[Prepared]:
        if self.prepare is None or self._pool is None:
            return char_lengths(pairs)
        prepared = await asyncio.get_running_loop().run_in_executor(self._pool, self.prepare, pairs)
        if len(prepared) != len(pairs):
            raise RerankPerfError(f"prepare returned {len(prepared)} items for {len(pairs)} pairs")
        return list(prepared)
