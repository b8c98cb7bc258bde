"""A variant's speed counts only if its answers are ``predict``'s: its logits and its scores (what is timed) against
the reference backend's, on the cell's own workload, within the precision's invariance tolerance
(``invariance.tolerance``). The reference runs one pair per batch (no padding, the invariance checks' own
reference), so an out-of-memory error during the check is the variant's, never predict's."""

from __future__ import annotations

import numpy as np

from ..backends import Reranker
from ..workloads.workload import Workload
from .invariance import tolerance


class ReferenceScores:
    """``predict``'s logits and scores of each workload, one pair per batch, computed once per workload id."""

    def __init__(self, reference: Reranker) -> None:
        self.reference = reference
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def of(self, workload: Workload) -> tuple[np.ndarray, np.ndarray]:
        if workload.id not in self._cache:
            pairs = list(workload.pairs)
            logits = self.reference.logits(pairs, 1)
            scores = self.reference.predict(pairs, 1).astype(np.float64)
            self._cache[workload.id] = (logits, scores)
        return self._cache[workload.id]


def _worst(got: np.ndarray, ref: np.ndarray, tol: np.ndarray) -> tuple[int, float] | None:
    """The pair that misses the tolerance by most (non-finite values always miss), or None."""
    off = ~(np.abs(got - ref) <= tol)  # NaN compares False: it misses
    if not off.any():
        return None
    excess = np.where(np.isfinite(got - ref), np.abs(got - ref) - tol, np.inf)
    i = int(np.argmax(np.where(off, excess, -np.inf)))
    return i, float(abs(got[i] - ref[i]))


def score_mismatch(variant: Reranker, reference: ReferenceScores, workload: Workload, batch_size: int) -> str | None:
    """Why ``variant`` does not answer as ``predict`` on this workload (each call of a round at ``batch_size``)."""
    ref_logits, ref_scores = reference.of(workload)
    tol = tolerance(variant.identity.dtype, np.nan_to_num(ref_logits))
    for what in ("logits", "scores"):
        ref = ref_logits if what == "logits" else ref_scores
        got = np.empty(len(workload.pairs), dtype=np.float64)
        for first, stop in workload.call_slices():
            pairs = list(workload.pairs[first:stop])
            out = variant.logits(pairs, batch_size) if what == "logits" else variant.predict(pairs, batch_size)
            got[first:stop] = out
        worst = _worst(got, ref, tol)
        if worst is not None:
            index, deviation = worst
            return (
                f"variant {variant.variant}: its {what} differ from predict's by {deviation:.3g} at pair {index}, "
                f"beyond the {variant.identity.dtype} tolerance; a faster wrong answer is not a result"
            )
    return None
