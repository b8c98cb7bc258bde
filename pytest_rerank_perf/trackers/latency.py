"""Latency trackers: wall time per predict call, and forward time per batch.

CUDA runs asynchronously, so a call's time only means something once the device is synchronised: the call
tracker synchronises at the end of every call (inside the timed region, as pytest-benchmark's timer sees it too),
so no work of one round leaks into the next. The batch tracker stamps CUDA events around each forward instead of
synchronising, so it adds no stall; the events are read once, after the cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..machine import device as dev
from ..stats import Percentiles
from .base import Span


@dataclass(frozen=True)
class CallResult:
    """Seconds per measured call; throughput is pairs per call over the median call."""

    samples: tuple[float, ...]
    pairs_per_call: int

    @property
    def latency(self) -> Percentiles:
        return Percentiles.of(self.samples)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs_per_call / self.latency.median

    def cell_fields(self) -> dict[str, Any]:
        return {
            "pairs_per_s": self.pairs_per_s,
            "latency_s": {"call": self.latency.to_dict()},
            "samples": {"throughput": [self.pairs_per_call / s for s in self.samples]},
        }

    def merge(self, other: CallResult) -> CallResult:
        return CallResult(self.samples + other.samples, self.pairs_per_call)


class CallTracker:
    """Wraps the measured callable and times each call (synchronised); ``samples`` holds every call's seconds,
    warm-up included; ``start``/``stop`` mark the measured ones."""

    def __init__(self, fn: Callable[[], Any], device: str, clock: Callable[[], float] = dev.clock) -> None:
        self.fn = fn
        self.sync = dev.synchronizer(device)
        self.clock = clock  # a virtual clock in the gate's detection-power simulation
        self.samples: list[float] = []
        self._span = (0, 0)

    def __call__(self) -> Any:
        start = self.clock()
        out = self.fn()
        self.sync()
        self.samples.append(self.clock() - start)
        return out

    def start(self) -> None:
        self._span = (len(self.samples), len(self.samples))

    def stop(self) -> None:
        self._span = (self._span[0], len(self.samples))

    @property
    def measured(self) -> int:
        return self._span[1] - self._span[0]

    def result(self, span: Span) -> CallResult:
        return CallResult(tuple(self.samples[self._span[0] : self._span[1]]), span.pairs_per_call)


@dataclass(frozen=True)
class BatchResult:
    """Forward seconds of every measured batch, and their mean per call (one independent sample per round)."""

    seconds: tuple[float, ...]
    per_round: tuple[float, ...]
    why_null: str | None = None

    def cell_fields(self) -> dict[str, Any]:
        latency = Percentiles.of(self.seconds).to_dict() if self.seconds else None
        fields: dict[str, Any] = {"latency_s": {"batch": latency}}
        if latency is None:
            fields["why_null"] = {"latency_s.batch": self.why_null or "no forward was timed"}
        if self.per_round:
            fields["samples"] = {"latency": list(self.per_round)}
        return fields

    def merge(self, other: BatchResult) -> BatchResult:
        why = self.why_null or other.why_null
        return BatchResult(self.seconds + other.seconds, self.per_round + other.per_round, why)


class BatchTracker:
    """Forward time of every batch, from hooks on the module that runs one batch per forward (none: no figure)."""

    def __init__(self, module: Any | None, device: str) -> None:
        self.module = module
        self.device = device
        self._open: Any = None
        self._stamps: list[tuple[Any, Any]] = []
        self._handles: list[Any] = []

    def start(self) -> None:
        self._stamps = []
        if self.module is None:
            return

        def pre(*_: Any) -> None:
            self._open = dev.stamp(self.device)

        def post(*_: Any) -> None:
            self._stamps.append((self._open, dev.stamp(self.device)))

        self._handles = [self.module.register_forward_pre_hook(pre), self.module.register_forward_hook(post)]

    def stop(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def result(self, span: Span) -> BatchResult:
        if self.module is None:
            return BatchResult((), (), "this backend exposes no per-batch module to time forwards on")
        seconds = dev.elapsed(self.device, self._stamps)
        step = span.batches_per_call
        if not seconds or len(seconds) != span.calls * step:
            return BatchResult(tuple(seconds), ())
        # the rank test wants independent samples: batches within one call share its state, calls do not
        per_round = tuple(float(np.mean(seconds[i : i + step])) for i in range(0, len(seconds), step))
        return BatchResult(tuple(seconds), per_round)
