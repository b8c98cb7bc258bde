"""Score invariance: a reranker's scores must not depend on batch size, input order or batch neighbours.

``CrossEncoder.predict`` sorts pairs by length, pads each batch to its longest pair and masks the padding, so in
exact arithmetic a pair's logit depends on nothing but the pair. In floating point it moves by rounding only: the
kernels chosen (and their reduction order) change with the batch shape. The tolerance is therefore a few units in
the last place of the logit in the compute precision, compared on **logits** (before the sigmoid, which would
squash differences):

- fp32: unit roundoff 6e-8; 24 layers of accumulated rounding on |logit| <= ~10 stay far below 1e-5;
- fp16: 10-bit mantissa, ulp(8) = 2^-7 = 7.8e-3: tolerance 1e-2 absolute plus 2 ulps of the logit;
- bf16: 7-bit mantissa, 8x coarser than fp16: tolerance 6e-2 absolute plus 2 ulps of the logit.

Measured on the CPU (tiny and full twin): fp32 deviates by < 1e-6 across batch sizes, bf16 by 1.4e-2 on logits.
The **ranking** of each query's documents must be identical wherever two scores differ by more than the tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..backends import Pair, Reranker

ABS_TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2, "bf16": 6e-2}
MANTISSA_BITS = {"fp32": 23, "fp16": 10, "bf16": 7}
ULPS = 2


def tolerance(dtype: str, logits: np.ndarray) -> np.ndarray:
    """Per-score tolerance: the precision's absolute floor plus ``ULPS`` units in the last place of the logit."""
    magnitude = np.maximum(np.abs(logits), 1.0)
    ulp = 2.0 ** (np.floor(np.log2(magnitude)) - MANTISSA_BITS[dtype])
    return ABS_TOLERANCE[dtype] + ULPS * ulp


@dataclass(frozen=True)
class Deviation:
    check: str  # "batch_size=8", "permutation", "padding"
    max_abs: float
    worst_index: int
    allowed: float  # tolerance at the worst pair

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.allowed


@dataclass(frozen=True)
class InvarianceReport:
    dtype: str
    reference: np.ndarray = field(repr=False)
    deviations: tuple[Deviation, ...]
    ranking_violations: tuple[str, ...] = ()

    @property
    def max_deviation(self) -> float:
        return max((d.max_abs for d in self.deviations), default=0.0)

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.deviations) and not self.ranking_violations

    def failures(self) -> list[str]:
        out = [
            f"{d.check}: logit moved by {d.max_abs:.3g} at pair {d.worst_index}, allowed {d.allowed:.3g}"
            for d in self.deviations
            if not d.ok
        ]
        return out + list(self.ranking_violations)

    def assert_ok(self) -> None:
        if not self.ok:
            raise AssertionError(f"scores are not invariant ({self.dtype}):\n  " + "\n  ".join(self.failures()))


def _deviation(check: str, got: np.ndarray, ref: np.ndarray, tol: np.ndarray) -> Deviation:
    excess = np.abs(got - ref) - tol
    worst = int(np.argmax(excess))
    return Deviation(check, float(np.abs(got - ref)[worst]), worst, float(tol[worst]))


def _ranking_violations(
    pairs: Sequence[Pair], ref: np.ndarray, got: np.ndarray, tol: np.ndarray, check: str
) -> list[str]:
    """Per query: any two documents whose reference scores differ by more than the tolerance keep their order."""
    out = []
    by_query: dict[str, list[int]] = {}
    for i, (query, _) in enumerate(pairs):
        by_query.setdefault(query, []).append(i)
    for idx in by_query.values():
        for a in idx:
            for b in idx:
                gap = ref[a] - ref[b]
                if gap > tol[a] + tol[b] and not got[a] > got[b]:
                    out.append(f"{check}: pairs {a} and {b} of one query swapped rank (reference gap {gap:.3g})")
    return out


def check_invariance(
    model: Reranker,
    pairs: Sequence[Pair],
    batch_sizes: Sequence[int] | None = None,
    seed: int = 0,
    long_neighbour: Pair | None = None,
) -> InvarianceReport:
    """Logits of ``pairs`` against the one-pair-per-batch reference (no padding at all), with the tolerance of the
    model's precision:

    - at every batch size in ``batch_sizes`` (default: 1..len(pairs) and a few above);
    - with the input order permuted (seeded), then mapped back;
    - with a very long neighbour in every batch (``long_neighbour``), so every pair is padded to its length.
    """
    if not pairs:
        raise ValueError("check_invariance needs at least one pair")
    dtype, logits = model.identity.dtype, model.logits
    n = len(pairs)
    sizes = list(batch_sizes) if batch_sizes else sorted({*range(1, n + 1), n + 1, 2 * n, 64})
    ref = logits(pairs, 1)
    tol = tolerance(dtype, ref)
    deviations, ranking = [], []
    for bs in sizes:
        got = logits(pairs, bs)
        deviations.append(_deviation(f"batch_size={bs}", got, ref, tol))
        ranking += _ranking_violations(pairs, ref, got, tol, f"batch_size={bs}")
    perm = np.random.default_rng(seed).permutation(n)
    permuted = logits([pairs[i] for i in perm], max(sizes))
    back = np.empty(n)
    back[perm] = permuted
    deviations.append(_deviation("permutation", back, ref, tol))
    ranking += _ranking_violations(pairs, ref, back, tol, "permutation")
    if long_neighbour is not None:
        # each pair batched with the long one: it is padded to the long pair's length
        padded = np.array([logits([p, long_neighbour], 2)[0] for p in pairs])
        deviations.append(_deviation("padding", padded, ref, tol))
        ranking += _ranking_violations(pairs, ref, padded, tol, "padding")
    return InvarianceReport(dtype, ref, tuple(deviations), tuple(ranking))


@dataclass
class InvarianceResult:
    """The largest logit deviation of each example a run checked."""

    key: ClassVar[str] = "invariance"
    dtype: str
    deviations: list[float] = field(default_factory=list)

    @property
    def max_deviation(self) -> float | None:
        return max(self.deviations, default=None)

    def report_fields(self) -> dict[str, Any]:
        return {"invariance_max_logit_deviation": self.max_deviation}

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"invariance_max_logit_deviation": None}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> InvarianceResult | None:
        value = data.get("invariance_max_logit_deviation")
        return None if value is None else cls((data.get("model") or {}).get("dtype", "?"), [float(value)])

    def merge(self, other: InvarianceResult) -> InvarianceResult:
        return InvarianceResult(self.dtype, self.deviations + other.deviations)

    def summary_lines(self) -> list[str]:
        return [f"score invariance: max logit deviation {self.max_deviation:.3g}"]

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        return [
            "",
            "## Score invariance",
            "",
            f"Max logit deviation across batch sizes, order and padding: {self.max_deviation:.3g} ({self.dtype}).",
        ]
