"""Files that are never half-written (atomic replacement, an exclusive lock for read-modify-write), and text files
read with one message per way reading can fail."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock


def _temp_names(path: Path) -> re.Pattern[str]:
    """``write_atomic``'s own temp names for ``path``: ``.<name>.<8 of mkstemp's characters>.tmp``."""
    return re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")


def remove_stale_temps(path: Path, older_than_ns: int) -> list[Path]:
    """Temp files of ``path`` that an interrupted write left (a killed process cannot remove its own), last
    modified before ``older_than_ns``: a write still under way elsewhere is newer and stays. Returns those removed."""
    pattern, removed = _temp_names(path), []
    for entry in os.scandir(path.parent):
        if not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime_ns < older_than_ns:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: readers see the old file or the new one, never half. Temp
    files of earlier writes of ``path`` that were killed mid-write are removed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    started_ns = os.fstat(fd).st_mtime_ns
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
    with contextlib.suppress(OSError):
        remove_stale_temps(path, started_ns)
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


@dataclass(frozen=True)
class ReadFixes:
    """What to tell the user, per way a file cannot be read, for one kind of file."""

    missing: str  # after "no such file; "
    directory: str  # after "is a directory; "
    undecodable: str  # the whole message after the path; may name {reason} and {start} of the decode error
    unreadable: str  # after "cannot be read (...); "


def read_text(path: Path, read: Callable[[], str], error: type[Exception], fixes: ReadFixes) -> str:
    """``read()`` (the caller's way of reading ``path``), every failure an ``error`` naming the path and the fix."""
    try:
        return read()
    except FileNotFoundError:
        raise error(f"{path}: no such file; {fixes.missing}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory; {fixes.directory}") from None
    except PermissionError:
        raise error(f"{path}: permission denied; make the file readable (chmod u+r) or copy it") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {fixes.undecodable.format(reason=exc.reason, start=exc.start)}") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc}); {fixes.unreadable}") from None
