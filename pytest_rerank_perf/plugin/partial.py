"""What a run measured so far, kept as it goes: ``<report dir>/partial/cells.jsonl`` (one JSON line per matrix cell)
and ``failures.txt`` (each failing test's report), flushed after each one.

The report folder is written at the session's end; a run stopped before (a ``timeout`` that kills, a lost machine)
would otherwise keep nothing. A run that ends normally removes them: its report supersedes them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FOLDER = "partial"


class PartialLog:
    def __init__(self, report_dir: Path, tag: str = "") -> None:
        """``tag``: this process's name where several share the folder (an xdist worker)."""
        self.folder = report_dir / FOLDER
        suffix = f"-{tag}" if tag else ""
        self.cells_path = self.folder / f"cells{suffix}.jsonl"
        self.failures_path = self.folder / f"failures{suffix}.txt"
        self.cells = 0
        self.failures = 0

    def _append(self, path: Path, text: str) -> None:
        if not (self.cells or self.failures):  # this run's first: what an earlier, interrupted run left goes
            self._remove()
            self.folder.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()

    def add_cell(self, cell: Mapping[str, Any]) -> None:
        self._append(self.cells_path, json.dumps(cell, default=str) + "\n")
        self.cells += 1

    def add_failure(self, nodeid: str, when: str, text: str) -> None:
        self._append(self.failures_path, f"FAILED {nodeid} ({when})\n{text.rstrip()}\n\n")
        self.failures += 1

    def written(self) -> list[Path]:
        return [p for p, n in ((self.cells_path, self.cells), (self.failures_path, self.failures)) if n]

    def describe(self, shown: str) -> str:
        """``cells so far: reports/partial/cells.jsonl; failures: ...``; "" when nothing was kept. ``shown``: how
        the report folder is named to the user."""
        parts = []
        if self.cells:
            parts.append(f"the {self.cells} cell(s) measured here are in {shown}/{FOLDER}/{self.cells_path.name}")
        if self.failures:
            parts.append(f"the {self.failures} failure(s) in {shown}/{FOLDER}/{self.failures_path.name}")
        return "; ".join(parts)

    def _remove(self) -> None:
        for path in (self.cells_path, self.failures_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def discard(self) -> None:
        """The run completed: its report supersedes these files (and what an earlier, interrupted run left)."""
        self._remove()
        with contextlib.suppress(OSError):  # only if empty: another process's files stay
            self.folder.rmdir()
        self.cells = self.failures = 0


def count_lines(path: Path) -> int:
    """Cells a running process has kept so far (0 before its first)."""
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0
