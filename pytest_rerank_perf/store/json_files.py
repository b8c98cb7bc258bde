"""The JSON-file store: ``<dir>/<profile id>.json``, written atomically under a file lock.

Temp file in the same directory, fsync, ``os.replace``: a reader never sees half a file, two writers never lose
each other's cells, and nothing already recorded is replaced unless asked (``--rerank-force``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..fsutil import locked, write_atomic
from .merging import merge
from .reader import read_profile
from .schema import BaselineProfile, ModelBaseline, dumps


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
