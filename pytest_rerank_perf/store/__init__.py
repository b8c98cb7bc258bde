"""Baseline stores. ``open_store`` picks one by the form of ``--rerank-baseline-dir``.

To add a store: one module here implementing ``BaselineStore`` (``base.py``) and a line in ``STORES`` naming the
URL scheme it serves (``--rerank-baseline-dir SCHEME://...``). A plain path is the JSON-file store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError
from .base import BaselineStore
from .json_files import JsonFileStore
from .reader import BaselineError, record_command
from .schema import BaselineProfile, ModelBaseline, section_from_cells

# scheme -> (location after "scheme://", rootdir) -> store
STORES: dict[str, Callable[[str, Path], BaselineStore]] = {
    "file": lambda where, root: JsonFileStore(_under(root, where), root),
}


def _under(root: Path, where: str) -> Path:
    path = Path(where)
    return path if path.is_absolute() else root / path


def open_store(spec: str, root: Path) -> BaselineStore:
    """``dir`` or ``file://dir`` (relative to ``root``), or ``SCHEME://...`` of another registered store."""
    scheme, sep, where = spec.partition("://")
    if not sep:
        scheme, where = "file", spec
    if scheme not in STORES:
        raise UsageError(
            f"--rerank-baseline-dir {spec!r}: no baseline store for {scheme}://; use a directory or one of "
            + ", ".join(f"{s}://" for s in STORES)
        )
    return STORES[scheme](where, root)


__all__ = [
    "STORES",
    "BaselineError",
    "BaselineProfile",
    "BaselineStore",
    "JsonFileStore",
    "ModelBaseline",
    "open_store",
    "record_command",
    "section_from_cells",
]
