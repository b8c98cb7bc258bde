"""The ``BaselineStore`` protocol: where baseline profiles live. The session reads, records and sets aside
through it and never touches files itself, so another store (a database, an object store) is one module here
plus a line in ``STORES`` (``store/__init__.py``)."""

from __future__ import annotations

from typing import Protocol

from .schema import BaselineProfile, ModelBaseline


class BaselineStore(Protocol):
    def location(self, profile_id: str) -> str:
        """Where this profile's baseline lives, as shown to users (a path relative to the rootdir, a URL)."""

    def load(self, profile_id: str) -> BaselineProfile | None:
        """The stored profile; None where none was recorded. A malformed one raises BaselineError."""

    def record(
        self, profile_id: str, key: str, section: ModelBaseline, force: bool, append: bool = False
    ) -> BaselineProfile:
        """Merge ``section`` into the stored profile atomically; refuses to replace cells unless ``force``;
        ``append`` pools samples into cells recorded by another process. Returns what was stored."""

    def set_aside(self, profile_id: str, key: str, section: ModelBaseline, stamp: str) -> str:
        """Keep cells whose recording was refused, beside the profile; returns where they went."""
