"""The tracker contract: ``start()``, ``stop()``, and ``result(span)``, a typed result that merges.

A tracker watches something while a cell's measured rounds run (call times, forward times, memory, energy) and
reports what it saw as fields of the cell's JSON. The cell runner starts every tracker in ``TRACKERS``
(``trackers/__init__.py``) around the rounds with ``track()``, so a new figure is one tracker module, a line there,
and a ``Metric`` entry (``metrics.py``) that tells the gate, the baseline, the tables and the plots about it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

R = TypeVar("R", bound="TrackerResult")


@dataclass(frozen=True)
class Span:
    """What ran between ``start()`` and ``stop()``: trackers turn totals into per-call or per-pair figures."""

    calls: int  # measured calls of the measured callable: rounds (a data file's round makes many predict calls)
    pairs_per_call: int
    batches_per_call: int

    @property
    def pairs(self) -> int:
        return self.calls * self.pairs_per_call


class TrackerResult(Protocol):
    def cell_fields(self) -> dict[str, Any]:
        """This result as fields of the cell JSON (nested dicts merge with other trackers' fields)."""

    def merge(self: R, other: R) -> R:
        """This result and another of the same cell from another process or worker, as one."""


class Tracker(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def result(self, span: Span) -> TrackerResult: ...


@contextlib.contextmanager
def track(trackers: Sequence[Tracker]) -> Iterator[None]:
    """Start every tracker, run the block, stop them in reverse order, even when the block fails."""
    started: list[Tracker] = []
    try:
        for tracker in trackers:
            tracker.start()
            started.append(tracker)
        yield
    finally:
        for tracker in reversed(started):
            tracker.stop()


def merge_fields(into: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Nested merge of cell fields: ``latency_s.call`` from one tracker and ``latency_s.batch`` from another."""
    for key, value in fields.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            merge_fields(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
    return into


def cell_fields(results: Sequence[TrackerResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for result in results:
        merge_fields(out, result.cell_fields())
    return out
