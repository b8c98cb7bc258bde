"""Deterministic stand-ins that implement ``Reranker``: for tests, and for simulations of the gate.

- ``Wrapped`` delegates everything to another reranker; the stand-ins below change one behaviour of it.
- ``OomAbove`` runs out of CUDA memory above a batch size (without a GPU).
- ``SkewedLogits`` returns logits that depend on the batch (size, position, padding): invariance checks must fail.
- ``CostModel`` has no network at all: a call costs a given time, on a virtual clock or the wall clock, and each
  pair's score is a fixed hash of its text, so any misrouted score shows as an exact mismatch.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from ..machine import device as dev
from ..workloads.batch_plans import Batches, predict_plan
from .base import Pair, Reranker
from .encoded import Encoded
from .identity import ModelIdentity
from .phases import PhaseRecorder


class Wrapped:
    """A reranker that behaves exactly like ``inner``; subclasses override what they change."""

    def __init__(self, inner: Reranker) -> None:
        self.inner = inner
        self.identity = inner.identity
        self.device = inner.device
        self.variant = inner.variant

    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        return self.inner.predict(pairs, batch_size)

    def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        return self.inner.logits(pairs, batch_size)

    def batches(self, pairs: Sequence[Pair], lengths: Sequence[int], batch_size: int) -> Batches:
        return self.inner.batches(pairs, lengths, batch_size)

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        return self.inner.encode(pairs)

    def predict_encoded(self, encoded: Sequence[Encoded], batch_size: int) -> np.ndarray:
        return self.inner.predict_encoded(encoded, batch_size)

    def batch_module(self) -> Any | None:
        return self.inner.batch_module()

    def flop_config(self) -> Any | None:
        return self.inner.flop_config()

    def truncating_at(self, max_length: int) -> AbstractContextManager[None]:
        return self.inner.truncating_at(max_length)

    def timed_phases(self, recorder: PhaseRecorder) -> AbstractContextManager[bool]:
        return self.inner.timed_phases(recorder)


class OomAbove(Wrapped):
    """Runs out of CUDA memory when asked for batches larger than ``limit``; records every batch size asked."""

    def __init__(self, inner: Reranker, limit: int, error: Callable[[], Exception] = dev.out_of_memory) -> None:
        super().__init__(inner)
        self.limit = limit
        self.error = error
        self.calls: list[int] = []

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        self.calls.append(batch_size)
        if min(batch_size, len(pairs)) > self.limit:
            raise self.error()
        return super().predict(pairs, batch_size)


class SkewedLogits(Wrapped):
    """Logits that move with the batch: by its size, a pair's position in it, or its longest pair (padding)."""

    HOW = ("batch_size", "position", "padding")

    def __init__(self, inner: Reranker, how: str) -> None:
        if how not in self.HOW:
            raise ValueError(f"how={how!r}: choose one of {', '.join(self.HOW)}")
        super().__init__(inner)
        self.how = how

    def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        out = super().logits(pairs, batch_size)
        if self.how == "batch_size":
            return out + 1e-3 * min(batch_size, len(pairs))
        if self.how == "position":
            return out + 1e-3 * np.arange(len(pairs))
        longest = max(len(self.tokenizer(q, d)["input_ids"]) for q, d in pairs)
        return out + 1e-4 * longest


def pair_score(pair: Pair) -> float:
    """A fixed score per pair in [0, 1), from its text alone."""
    return zlib.crc32(f"{pair[0]}\x00{pair[1]}".encode()) / 2**32


class VirtualClock:
    """A clock that only moves when told (``advance``): thousands of simulated calls take microseconds. Installed
    with ``device.use_clock``, it is what every timing site of a cell reads (``fakegpu/clock.py``)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._lock = threading.Lock()  # a batcher's model thread advances it while the event loop reads it

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


STANDIN_IDENTITY = ModelIdentity("cost-model", "standin", "0" * 64, None, "fp32", 512, 0, "")


class CostModel:
    """A model-free reranker: ``cost(pairs, batch_size)`` seconds per call, spent on ``clock`` (a virtual clock)
    or on the device clock (``clock=None``: busy-waited on the wall clock unless a test installed a virtual one)."""

    def __init__(
        self, cost: Callable[[int, int], float], clock: VirtualClock | None = None, tokenizer: Any = None
    ) -> None:
        self.cost = cost
        self.clock = clock
        self.identity = STANDIN_IDENTITY
        self.device = "cpu"
        self.variant = "predict"
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def _spend(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            dev.pause(seconds)  # the device clock: the wall clock, or the virtual one a test installed

    def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        self._spend(self.cost(len(pairs), batch_size))
        return np.array([pair_score(p) for p in pairs], dtype=np.float64)

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        return self.logits(pairs, batch_size).astype(np.float32)

    def batches(self, pairs: Sequence[Pair], lengths: Sequence[int], batch_size: int) -> Batches:
        return predict_plan(pairs, batch_size)

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        """No tokenizer: a pair's "ids" are its score's hash input, so scores still follow the pair exactly."""
        return [tuple(f"{q}\x00{d}".encode()) for q, d in pairs]

    def predict_encoded(self, encoded: Sequence[Encoded], batch_size: int) -> np.ndarray:
        self._spend(self.cost(len(encoded), batch_size))
        pairs = [tuple(bytes(e).decode().split("\x00", 1)) for e in encoded]
        return np.array([pair_score((p[0], p[1])) for p in pairs], dtype=np.float32)

    def batch_module(self) -> None:
        return None

    def flop_config(self) -> None:
        return None

    @contextlib.contextmanager
    def truncating_at(self, max_length: int) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def timed_phases(self, recorder: PhaseRecorder) -> Iterator[bool]:
        yield False  # no tokenizer and no device: nothing to report
