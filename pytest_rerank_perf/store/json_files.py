"""The JSON-file store: ``<dir>/<profile id>.json``, written atomically under a file lock.

Temp file in the same directory, fsync, ``os.replace``: a reader never sees half a file, two writers never lose
each other's cells, and nothing already recorded is replaced unless asked (``--rerank-force``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from ..fsutil import locked, write_atomic
from .reader import BaselineError, read_profile
from .schema import BaselineProfile, ModelBaseline, dumps


def clashes(existing: BaselineProfile | None, key: str, cells: Iterable[str], booms: Iterable[str] = ()) -> list[str]:
    """Which of these cells (and OOM boundaries) the profile already records for model ``key``."""
    old = existing.models.get(key) if existing else None
    if old is None:
        return []
    found = sorted(set(old.cells) & set(cells))
    return found + [f"oom_boundaries[{k}]" for k in sorted(set(old.oom_boundaries) & set(booms))]


def clash_error(key: str, found: Sequence[str]) -> BaselineError:
    shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    return BaselineError(
        f"the baseline for {key} already records {shown}; nothing was overwritten. "
        "Add --rerank-force to replace them (cells not re-measured keep their values)."
    )


def merge(
    existing: BaselineProfile | None, key: str, section: ModelBaseline, force: bool, append: bool = False
) -> BaselineProfile:
    """``existing`` with ``section``'s cells added; cells not re-measured keep their old values.

    Replacing a recorded cell (or OOM boundary) needs ``force``; without it nothing changes and the clash is raised.
    ``append`` pools the samples of cells recorded before with this run's instead (another process, same cells).
    """
    base = existing or BaselineProfile(str(section.hardware.get("profile_id", "")))
    old = base.models.get(key)
    if old is None:
        return replace(base, models={**base.models, key: section})
    found = clashes(existing, key, section.cells, section.oom_boundaries)
    if found and not (force or append):
        raise clash_error(key, found)
    cells = dict(section.cells)
    if append:
        cells = {k: old.cells[k].pooled(c) if k in old.cells else c for k, c in cells.items()}
    merged = replace(
        section,
        cells={**old.cells, **cells},
        oom_boundaries={**old.oom_boundaries, **section.oom_boundaries},
    )
    return replace(base, models={**base.models, key: merged})


def record(path: Path, key: str, section: ModelBaseline, force: bool, append: bool = False) -> BaselineProfile:
    """Merge ``section`` into the profile file at ``path`` under the lock, atomically. Returns what was written."""
    with locked(path):
        merged = merge(read_profile(path), key, section, force, append)
        write_atomic(path, dumps(merged))
    return merged


class JsonFileStore:
    """Profiles as JSON files in ``directory``; ``shown_from`` makes the paths users see relative (the rootdir)."""

    def __init__(self, directory: Path, shown_from: Path | None = None) -> None:
        self.directory = directory
        self.shown_from = shown_from

    def path(self, profile_id: str) -> Path:
        return self.directory / f"{profile_id}.json"

    def _shown(self, path: Path) -> str:
        if self.shown_from is not None:
            try:
                return str(path.relative_to(self.shown_from))
            except ValueError:
                pass
        return str(path)

    def location(self, profile_id: str) -> str:
        return self._shown(self.path(profile_id))

    def load(self, profile_id: str) -> BaselineProfile | None:
        return read_profile(self.path(profile_id))

    def record(
        self, profile_id: str, key: str, section: ModelBaseline, force: bool, append: bool = False
    ) -> BaselineProfile:
        return record(self.path(profile_id), key, section, force, append)

    def set_aside(self, profile_id: str, key: str, section: ModelBaseline, stamp: str) -> str:
        path = self.path(profile_id)
        side = path.with_name(f"{path.name}.unsaved-{stamp.replace(':', '')}-{os.getpid()}")
        side.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(side, dumps(BaselineProfile(profile_id, {key: section})))
        return self._shown(side)
