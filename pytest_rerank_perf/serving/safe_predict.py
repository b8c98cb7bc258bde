"""``safe_predict``: ``predict`` that backs off on CUDA out-of-memory instead of failing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends.base import Reranker
from ..machine import device as dev
from ..validation import positive_int
from ..workloads.pairs import Pair, check_pairs, crossencoder_order


@dataclass(frozen=True)
class SafePrediction:
    scores: np.ndarray  # float32, in input order
    batch_size: int  # the batch size that worked at the end
    halvings: tuple[int, ...]  # batch sizes that ran out of memory, in order


def safe_predict(model: Any, pairs: Sequence[Pair], batch_size: int = 32, **predict_kwargs: Any) -> SafePrediction:
    """Score ``pairs`` with ``model`` (a ``Reranker`` or a sentence-transformers ``CrossEncoder``), halving the batch
    size on CUDA out-of-memory instead of failing.

    Batches are cut in ``predict``'s own order (longest first, so the first batch is the largest one) and run one
    ``predict`` call each. When a batch runs out of memory only that batch is retried, at half the size (never
    straight to 1), and the smaller size is kept for the rest; finished batches are never recomputed. Raises
    the out-of-memory error if even one pair does not fit. ``predict_kwargs`` go to a ``CrossEncoder``'s
    ``predict`` (a ``Reranker`` takes none).
    """
    items = check_pairs(pairs, "safe_predict")
    positive_int(batch_size, "safe_predict: batch_size", ValueError)
    scores = np.empty(len(items), dtype=np.float32)
    if not items:
        return SafePrediction(scores, batch_size, ())
    device = str(getattr(model, "device", "cpu"))
    if not isinstance(model, Reranker):  # a plain CrossEncoder: no progress bar per batch, as predict's callers expect
        predict_kwargs = {"show_progress_bar": False, **predict_kwargs}
    order = crossencoder_order(items)
    halvings: list[int] = []
    start, size = 0, batch_size
    while start < len(order):
        idx = order[start : start + size]
        try:
            out = model.predict([items[i] for i in idx], batch_size=len(idx), **predict_kwargs)
        except Exception as exc:
            if not dev.is_oom(exc) or size == 1:
                raise
            out = None
        if out is None:
            dev.free_memory(device)
            halvings.append(size)
            size = max(1, size // 2)
            continue
        scores[idx] = np.asarray(out, dtype=np.float32).reshape(len(idx))
        start += len(idx)
    return SafePrediction(scores, size, tuple(halvings))
