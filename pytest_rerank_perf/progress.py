"""Progress lines for long work (pooled processes, the self-check's spread, the load search), so nothing runs silently
for minutes: written through pytest's terminal reporter (shown under ``-q``) with output capture suspended, since
some of that work runs inside a test. The plugin attaches its run's reporter once it has collected rerank-perf
benchmarks; without one (another pytest run, an xdist worker, a library call) the lines go nowhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

_writers: list[Callable[[str], None]] = []  # a stack: a pytester run inside a run attaches its own


def _writer(config: pytest.Config) -> Callable[[str], None]:
    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            # the progress dots (and -q's "[100%]") leave the line open; the reporter's own check misses -q's
            if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
                reporter.write("\n")
            reporter.write_line(line)
            reporter.flush()

    return write


def attach(config: pytest.Config) -> Callable[[], None]:
    """Send ``say``'s lines to ``config``'s terminal reporter until the returned function is called."""
    write = _writer(config)
    _writers.append(write)
    return lambda: _writers.remove(write)


def say(line: str) -> None:
    if _writers:
        _writers[-1](line)


def duration(seconds: float) -> str:
    """``41 s``, ``2 min 05 s``."""
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"
