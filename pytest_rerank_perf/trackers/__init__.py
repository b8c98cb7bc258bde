"""Trackers: what is watched while a cell's rounds run. ``TRACKERS`` is the registry the cell runner builds from.

To add a figure: one module here with a tracker (``base.Tracker``) whose result writes a cell field, a line in
``TRACKERS``, and a ``Metric`` entry in ``metrics.py``. The call tracker is not in the registry: it is the measured
callable itself, and every cell has it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Span, Tracker, TrackerResult, cell_fields, track
from .clocks import ClockTracker
from .energy import EnergyTracker
from .latency import BatchTracker, CallTracker
from .memory import MemoryTracker
from .metrics import METRICS, Metric

# (device, module that runs one batch or None) -> tracker; built once per runner, started and stopped per cell
TRACKERS: tuple[Callable[[str, Any], Tracker], ...] = (
    lambda device, module: BatchTracker(module, device),
    lambda device, module: MemoryTracker(device),
    lambda device, module: EnergyTracker(device),
    lambda device, module: ClockTracker(device),
)

__all__ = [
    "METRICS",
    "TRACKERS",
    "BatchTracker",
    "CallTracker",
    "ClockTracker",
    "EnergyTracker",
    "MemoryTracker",
    "Metric",
    "Span",
    "Tracker",
    "TrackerResult",
    "cell_fields",
    "track",
]
