"""The out-of-memory boundary: the largest batch of full-length pairs that fits, per max_length.

Only CUDA's out-of-memory counts (``device.is_oom``); any other error is a bug and propagates. After an OOM the
failed call's tensors are released (the exception and its traceback are dropped first) and the caching
allocator's blocks are returned, so the next attempt starts clean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ..backends import Reranker
from ..machine import device as dev
from ..tables import Table
from ..workloads.workload import Fixed, WorkloadSpec, build_workload

SEARCH_LIMIT = 4096  # batch sizes beyond this are not searched: a boundary of SEARCH_LIMIT means "at least"


@dataclass(frozen=True)
class Boundary:
    max_batch: int  # largest batch size that ran; 0 if even 1 did not fit
    first_oom: int | None  # smallest batch size that ran out of memory; None if ``limit`` fitted
    attempts: tuple[tuple[int, bool], ...]  # (batch size, fitted) in the order tried


def _fits(run: Callable[[int], Any], batch_size: int, device: str) -> bool:
    try:
        run(batch_size)
        return True
    except Exception as exc:
        if not dev.is_oom(exc):
            raise
    dev.free_memory(device)  # outside the except block: the traceback no longer pins the batch's tensors
    return False


def find_max_batch(run: Callable[[int], Any], device: str, limit: int = SEARCH_LIMIT) -> Boundary:
    """Largest batch size in 1..``limit`` for which ``run(batch_size)`` does not run out of memory.

    Doubles from 1 until a size fails (or ``limit``), then bisects between the last fit and the first failure;
    assumes that a batch that fits means every smaller one fits too.
    """
    attempts: list[tuple[int, bool]] = []

    def fits(bs: int) -> bool:
        ok = _fits(run, bs, device)
        attempts.append((bs, ok))
        return ok

    good, bad = 0, None
    size = 1
    while size <= limit:
        if not fits(size):
            bad = size
            break
        good = size
        size = limit if size < limit < size * 2 else size * 2
    if bad is None:
        return Boundary(good, None, tuple(attempts))
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return Boundary(good, bad, tuple(attempts))


def measure_boundary(model: Reranker, max_length: int, limit: int = SEARCH_LIMIT) -> Boundary:
    """The boundary for pairs of exactly ``max_length`` tokens, the model truncating there."""
    pair = build_workload(WorkloadSpec(Fixed(max_length)), model.tokenizer, 1).pairs[0]
    with model.truncating_at(max_length):
        return find_max_batch(lambda bs: model.predict([pair] * bs, bs), model.device, limit)


@dataclass
class OomBoundaries:
    key: ClassVar[str] = "oom_boundary"
    boundaries: dict[int, Boundary] = field(default_factory=dict)  # max_length -> boundary

    def report_fields(self) -> dict[str, Any]:
        return {"oom_boundaries": {str(k): asdict(b) for k, b in sorted(self.boundaries.items())}}

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"oom_boundaries": {}}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> OomBoundaries | None:
        raw = data.get("oom_boundaries") or {}
        if not raw:
            return None
        return cls(
            {
                int(k): Boundary(b["max_batch"], b.get("first_oom"), tuple(map(tuple, b.get("attempts") or ())))
                for k, b in raw.items()
            }
        )

    def merge(self, other: OomBoundaries) -> OomBoundaries:
        return OomBoundaries({**self.boundaries, **other.boundaries})

    def max_batches(self) -> dict[str, int]:
        """max_length -> largest batch, as the baseline stores them."""
        return {str(k): b.max_batch for k, b in self.boundaries.items()}

    def summary_lines(self) -> list[str]:
        out = []
        for length, b in sorted(self.boundaries.items()):
            more = "" if b.first_oom else " (the search limit: at least this many)"
            out.append(f"OOM boundary at max_length {length}: largest batch {b.max_batch}{more}")
        return out

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        rows = [
            (str(k), str(b.max_batch), str(b.first_oom or "none up to the search limit"))
            for k, b in sorted(self.boundaries.items())
        ]
        table = Table(("max_length", "largest batch that fits", "smallest that ran out"), rows)
        return ["", "## OOM boundaries: the largest batch before out-of-memory", "", *table.markdown()]
