"""Files that are never half-written: atomic replacement, and an exclusive lock for read-modify-write."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: readers see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the platform allows
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path``, held until the block exits (released by the OS if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # filelock picks the platform's lock (fcntl on POSIX, msvcrt on Windows); a new lock object per call, so nesting
    # locked() on one path in one process would deadlock
    with FileLock(path.with_name(f".{path.name}.lock")):
        yield
