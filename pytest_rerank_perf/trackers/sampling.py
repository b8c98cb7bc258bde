"""A periodic sampler: calls ``sample()`` at start, every ``interval_s`` in a daemon thread, and once at stop.

The first reading is taken in the caller's thread, so a cell shorter than one interval still gets one, and the
sample function must never raise (a failed query is recorded by the caller, not allowed to end the thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class PeriodicSampler:
    def __init__(self, sample: Callable[[], None], interval_s: float, name: str) -> None:
        self.sample = sample
        self.interval_s = interval_s
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> None:
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()

    @property
    def running(self) -> bool:
        return self._thread is not None
