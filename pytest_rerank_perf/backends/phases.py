"""The host phases a backend reports while a cell's time breakdown is taken (``trackers/breakdown.py``).

A backend wraps its tokenization (``tokenize``) and its host-to-device copies (``h2d``) in ``recorder.phase(name)``
while ``timed_phases(recorder)`` is open; outside that block it reports to ``NO_PHASES``, which costs nothing.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Protocol

PHASES = ("tokenize", "h2d")


class PhaseRecorder(Protocol):
    def phase(self, name: str) -> AbstractContextManager[None]: ...


class _NoPhases:
    def phase(self, name: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


NO_PHASES: PhaseRecorder = _NoPhases()
