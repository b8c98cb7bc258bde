"""Per-request latency of a data-file workload: a round makes every request's predict call in turn, each timed.

A service scores one request (a query and its candidates) per call, and its users feel each call's latency, not
the round's. ``RequestTimer`` is the body of the measured callable (the call tracker still times the round and
gives pairs/s); each call is synchronised inside its timed region so no request's work leaks into the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..machine import device as dev
from ..stats import Percentiles
from ..workloads.pairs import Pair
from .base import Span


@dataclass(frozen=True)
class RequestResult:
    """Seconds of each call (one per measured round), each call's pairs, and what the calls are: a file's
    ``requests``, or ``pairs`` chunks of num_pairs."""

    seconds: tuple[tuple[float, ...], ...]
    sizes: tuple[int, ...]
    kind: str

    def cell_fields(self) -> dict[str, Any]:
        flat = [s for per_request in self.seconds for s in per_request]
        if not flat:
            return {"latency_s": {"request": None}, "why_null": {"latency_s.request": "no round was measured"}}
        return {
            "latency_s": {"request": Percentiles.of(flat).to_dict()},
            # each call's median over the rounds (not every sample: a 10k-request file would bloat the report):
            # what scenario recommendations judge the file's own request sizes on
            "requests": {
                "kind": self.kind,
                "pairs": list(self.sizes),
                "median_s": [float(np.median(s)) for s in self.seconds],
            },
        }

    def merge(self, other: RequestResult) -> RequestResult:
        seconds = tuple(a + b for a, b in zip(self.seconds, other.seconds, strict=True))
        return RequestResult(seconds, self.sizes, self.kind)


class RequestTimer:
    """The measured callable's body for a workload of several predict calls; times the ones between start and
    stop (warm-up rounds are not kept)."""

    def __init__(
        self,
        predict: Callable[[list[Pair]], Any],
        calls: Sequence[list[Pair]],
        kind: str,
        device: str,
        clock: Callable[[], float] = dev.clock,
    ) -> None:
        self.predict = predict
        self.calls = calls
        self.kind = kind
        self.sync = dev.synchronizer(device)
        self.clock = clock
        self.seconds: list[list[float]] = [[] for _ in calls]
        self.recording = False

    def __call__(self) -> None:
        for i, pairs in enumerate(self.calls):
            start = self.clock()
            self.predict(pairs)
            self.sync()
            if self.recording:
                self.seconds[i].append(self.clock() - start)

    def start(self) -> None:
        self.seconds = [[] for _ in self.calls]
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def result(self, span: Span) -> RequestResult:
        return RequestResult(tuple(tuple(s) for s in self.seconds), tuple(len(c) for c in self.calls), self.kind)
