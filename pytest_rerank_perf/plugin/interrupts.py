"""Ctrl-C and SIGTERM: one way to stop a run, wherever it is.

SIGTERM (what CI runners and ``timeout`` send) raises ``KeyboardInterrupt`` in the main thread for the run's
duration, as Ctrl-C does: pytest stops the tests with exit status 2, and the session's end winds down the same way
(``winddown.py``). A step that must not be cut in half (recording the baseline, setting cells aside, the wind-down
itself) runs under ``held()``: a signal waits until the step is done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` that says what it stopped (``during``: "while pooled process 2 of 3 ran")."""

    def __init__(self, during: str) -> None:
        super().__init__(during)
        self.during = during


_seen = {"SIGTERM": False}  # whether this process's interrupt was a SIGTERM: the line names it


def _as_ctrl_c(signum: int, frame: Any) -> None:
    """SIGTERM does what Ctrl-C does now: Python's ``KeyboardInterrupt``, or the SIGINT handler of whatever runs
    (asyncio cancels its main task first, ``held`` waits)."""
    _seen["SIGTERM"] = True
    on_sigint = signal.getsignal(signal.SIGINT)
    if callable(on_sigint) and on_sigint is not signal.default_int_handler:
        on_sigint(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt("SIGTERM")


def sigterm_seen() -> bool:
    return _seen["SIGTERM"]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # only there can handlers be set


def sigterm_as_ctrl_c() -> Callable[[], None]:
    """Make SIGTERM raise ``KeyboardInterrupt``; returns what restores the previous handler. Another handler already
    installed (by the embedding program, or an outer pytest run) is left as it is."""
    if not _main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None
    _seen["SIGTERM"] = False
    signal.signal(signal.SIGTERM, _as_ctrl_c)

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return restore


class Held:
    """The signals that arrived while held (their names), in order."""

    def __init__(self) -> None:
        self.signals: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.signals)

    def catch(self, signum: int, frame: Any) -> None:
        self.signals.append(signal.Signals(signum).name)


@contextlib.contextmanager
def held(reraise: bool = True) -> Iterator[Held]:
    """Hold SIGINT and SIGTERM for the block: it runs to its end. Then, where one arrived, raise ``KeyboardInterrupt``
    (``reraise``) or only report it in the yielded ``Held``. A block that raises keeps its own exception."""
    caught = Held()
    if not _main_thread():
        yield caught
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s, handler in previous.items():
        if handler is not None:  # None: a handler not set from Python, which could not be put back
            signal.signal(s, caught.catch)
    try:
        yield caught
    finally:
        for s, handler in previous.items():
            if handler is not None:
                signal.signal(s, handler)
    if caught and reraise:
        raise KeyboardInterrupt(caught.signals[0])
