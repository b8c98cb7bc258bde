"""Out of memory: the largest batch that fits, and a predict that backs off instead of failing.

Only CUDA's out-of-memory error is caught (``measure.is_oom``); any other RuntimeError is a bug and propagates.
After an OOM the failed call's tensors are released (the exception and its traceback are dropped first) and the
caching allocator's blocks are returned with ``torch.cuda.empty_cache()``, so the next attempt starts clean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .measure import free_device_memory, is_oom
from .workload import Pair, check_pairs, crossencoder_order


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
        if not is_oom(exc):
            raise
    free_device_memory(device)  # outside the except block: the traceback no longer pins the batch's tensors
    return False


def find_max_batch(run: Callable[[int], Any], device: str, limit: int = 4096) -> Boundary:
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


@dataclass(frozen=True)
class SafePrediction:
    scores: np.ndarray  # float32, in input order
    batch_size: int  # the batch size that worked at the end
    halvings: tuple[int, ...]  # batch sizes that ran out of memory, in order


def safe_predict(
    cross_encoder: Any, pairs: Sequence[Pair], batch_size: int = 32, **predict_kwargs: Any
) -> SafePrediction:
    """``CrossEncoder.predict`` that halves the batch size on CUDA out-of-memory instead of failing.

    Batches are cut in ``predict``'s own order (longest first, so the first batch is the largest one) and run one
    ``predict`` call each. When a batch runs out of memory only that batch is retried, at half the size (never
    straight to 1), and the smaller size is kept for the rest; finished batches are never recomputed. Raises
    the out-of-memory error if even one pair does not fit.
    """
    items = check_pairs(pairs, "safe_predict")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"safe_predict: batch_size must be a positive integer, got {batch_size!r}")
    scores = np.empty(len(items), dtype=np.float32)
    if not items:
        return SafePrediction(scores, batch_size, ())
    device = str(getattr(cross_encoder, "device", "cpu"))
    order = crossencoder_order(items)
    kwargs = {"show_progress_bar": False, **predict_kwargs}
    halvings: list[int] = []
    start, size = 0, batch_size
    while start < len(order):
        idx = order[start : start + size]
        try:
            out = cross_encoder.predict([items[i] for i in idx], batch_size=len(idx), **kwargs)
        except Exception as exc:
            if not is_oom(exc) or size == 1:
                raise
            out = None
        if out is None:
            free_device_memory(device)
            halvings.append(size)
            size = max(1, size // 2)
            continue
        scores[idx] = np.asarray(out, dtype=np.float32).reshape(len(idx))
        start += len(idx)
    return SafePrediction(scores, size, tuple(halvings))
