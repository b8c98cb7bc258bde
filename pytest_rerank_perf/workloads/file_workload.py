"""Workloads from a user's data file (``--rerank-workload``): the matrix's num_pairs axis over it, and each cell's.

Rerank requests are measured as a service calls them: one predict call per request, every request of the file in
each round, so the matrix sweeps batch sizes only (its one num_pairs value is the file's pair count). Flat pairs
are cut into consecutive chunks of ``num_pairs`` pairs, one predict call each; the last, shorter chunk is left out
so every call of a cell has the same size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import UsageError, WorkloadError
from .datafile import DataFile, read_data_file
from .workload import Workload


def num_pairs_axis(data: DataFile, wanted: Sequence[int] | None, default: Sequence[int]) -> tuple[int, ...]:
    """The num_pairs values to sweep over ``data``: ``wanted`` (``--rerank-num-pairs``) or the device's default."""
    total = sum(data.request_sizes)
    if data.shape == "requests":
        if wanted and tuple(wanted) != (total,):
            raise UsageError(
                f"--rerank-num-pairs (or ini rerank_num_pairs) does not apply to {data.path}: it holds rerank "
                "requests, and each predict call is one request of the file; drop it (or write the file as flat pairs)"
            )
        return (total,)
    if wanted:
        too_many = [n for n in wanted if n > total]
        if too_many:
            raise UsageError(
                f"--rerank-num-pairs {','.join(map(str, too_many))}: {data.path} holds only {total} pairs; "
                f"use values up to {total}"
            )
        return tuple(wanted)
    return tuple(n for n in default if n <= total) or (total,)


def open_data_file(text: str, base: Path, num_pairs: Sequence[int] | None) -> DataFile:
    """``--rerank-workload`` read and checked (against ``--rerank-num-pairs`` too): a ``UsageError`` otherwise."""
    path = Path(text).expanduser()
    try:
        data = read_data_file(path if path.is_absolute() else base / path)
    except WorkloadError as exc:
        raise UsageError(f"--rerank-workload: {exc}") from None
    num_pairs_axis(data, num_pairs, ())
    return data


def file_workload(data: DataFile, lengths: Sequence[int], num_pairs: int) -> Workload:
    """The cell's workload: every request (one call each), or the first whole chunks of ``num_pairs`` pairs."""
    pairs = data.pairs
    if data.shape == "requests":
        return Workload(f"{data.id}-n{len(pairs)}", pairs, tuple(lengths), tuple(data.request_sizes), "requests")
    used = len(pairs) // num_pairs * num_pairs
    calls = (num_pairs,) * (used // num_pairs)
    return Workload(f"{data.id}-n{num_pairs}", pairs[:used], tuple(lengths[:used]), calls, "pairs")
