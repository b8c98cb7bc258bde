"""Latency trackers: wall time per predict call, and forward time per batch.

CUDA runs asynchronously, so a call's time only means something once the device is synchronised: the call
tracker synchronises at the end of every call (inside the timed region, as pytest-benchmark's timer sees it too),
so no work of one round leaks into the next. The batch tracker records CUDA events around each forward instead of
synchronising, so it adds no stall; the events are read once, after the cell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Percentiles:
    median: float
    p90: float
    p99: float
    mean: float
    count: int

    @staticmethod
    def of(samples: list[float]) -> Percentiles:
        if not samples:
            raise ValueError("no samples")
        a = np.asarray(samples, dtype=float)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return Percentiles(float(p50), float(p90), float(p99), float(a.mean()), len(samples))

    def to_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "p90": self.p90, "p99": self.p99, "mean": self.mean, "count": self.count}


def synchronizer(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


class CallTracker:
    """Times each call of ``fn`` (synchronised); ``samples`` holds seconds per call, warm-up included."""

    def __init__(self, fn: Callable[[], Any], device: str, clock: Callable[[], float] = time.perf_counter) -> None:
        self.fn = fn
        self.sync = synchronizer(device)
        self.clock = clock  # a virtual clock in the gate's power simulation
        self.samples: list[float] = []

    def __call__(self) -> Any:
        start = self.clock()
        out = self.fn()
        self.sync()
        self.samples.append(self.clock() - start)
        return out

    def result(self, last: int) -> Percentiles:
        """Percentiles of the last ``last`` calls (the measured rounds, after warm-up)."""
        return Percentiles.of(self.samples[-last:])


class BatchTracker:
    """Forward time of every batch, from hooks on the module that runs one batch per call."""

    def __init__(self, module: Any, device: str) -> None:
        self.module = module
        self.cuda = device.startswith("cuda")
        self._open: Any = None
        self._pairs: list[tuple[Any, Any]] = []
        self._handles: list[Any] = []

    def _stamp(self) -> Any:
        if self.cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self) -> None:
        def pre(*_: Any) -> None:
            self._open = self._stamp()

        def post(*_: Any) -> None:
            self._pairs.append((self._open, self._stamp()))

        self._handles = [self.module.register_forward_pre_hook(pre), self.module.register_forward_hook(post)]

    def stop(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def seconds(self, last: int | None = None) -> list[float]:
        """Forward seconds of the last ``last`` batches (the measured rounds), or of all of them."""
        pairs = self._pairs[-last:] if last else self._pairs
        if self.cuda and pairs:
            import torch

            torch.cuda.synchronize()
            return [start.elapsed_time(end) / 1000.0 for start, end in pairs]
        return [end - start for start, end in pairs]

    def result(self, last: int | None = None) -> Percentiles | None:
        samples = self.seconds(last)
        return Percentiles.of(samples) if samples else None

    def per_round(self, rounds: int, batches_per_round: int) -> tuple[float, ...]:
        """Mean forward seconds per batch in each of the last ``rounds`` rounds: one sample per round, as the gate's
        rank test wants independent samples (batches within a round share its state)."""
        samples = self.seconds(rounds * batches_per_round)
        if len(samples) != rounds * batches_per_round:
            return ()
        step = batches_per_round
        return tuple(float(np.mean(samples[i : i + step])) for i in range(0, len(samples), step))
