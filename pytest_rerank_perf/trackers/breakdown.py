"""Where a call's time goes: tokenization, host-to-device copies, the forward passes, and the rest.

The breakdown runs a few rounds of its own after a cell's measured rounds (its synchronisations would stretch
them). In those rounds every phase is timed on one host timeline, with the device synchronised at each phase's
edges, so no GPU work of one phase is billed to the next:

- ``tokenize``, ``h2d``: the host intervals the backend reports (``Reranker.timed_phases``);
- ``forward``: device time of each forward of the batch module (CUDA events on a GPU, the wall clock on the CPU);
- ``rest``: the call's time minus those three (collation, activation, the copy back, Python).

``rest`` is what is left, so the parts add up to the instrumented call by construction; what checks them is
(a) ``rest`` is never negative beyond 2% of the call (no phase is counted twice or overlaps another), and
(b) the instrumented call's median against the measured rounds' median (``vs_measured``): the synchronisations
must not change what is being broken down. A cell whose check fails says so in ``breakdown.why``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..backends.phases import PHASES
from ..machine import device as dev
from .base import Span

PARTS = ("tokenize", "h2d", "forward", "rest")
OVERLAP_TOLERANCE = 0.02  # rest may dip below zero by timer granularity, not more
DISTORTION_TOLERANCE = 0.10  # the instrumented call against the measured one


@dataclass(frozen=True)
class BreakdownResult:
    """Per instrumented call: its seconds and each timed part's (``rest`` derived)."""

    calls: tuple[tuple[float, float, float, float], ...]  # (call, tokenize, h2d, forward)
    measured_call_s: float | None = None
    why_null: str | None = None

    def parts(self) -> dict[str, np.ndarray]:
        a = np.asarray(self.calls, dtype=float).reshape(-1, 4)
        return {"tokenize": a[:, 1], "h2d": a[:, 2], "forward": a[:, 3], "rest": a[:, 0] - a[:, 1:].sum(axis=1)}

    def checks(self) -> list[str]:
        """Why these parts cannot be trusted; empty when they add up."""
        totals = np.asarray([c[0] for c in self.calls])
        why = []
        worst = float(np.min(self.parts()["rest"] / totals))
        if worst < -OVERLAP_TOLERANCE:
            why.append(f"timed parts exceed the call by {-worst:.1%}: phases overlap")
        if self.measured_call_s:
            drift = float(np.median(totals)) / self.measured_call_s - 1
            if abs(drift) > DISTORTION_TOLERANCE:
                why.append(f"instrumented calls are {drift:+.1%} off the measured ones")
        return why

    def cell_fields(self) -> dict[str, Any]:
        if not self.calls or self.why_null:
            reason = self.why_null or "no call was broken down"
            return {"breakdown": {"parts": {p: None for p in PARTS}}, "why_null": {"breakdown": reason}}
        totals = np.asarray([c[0] for c in self.calls])
        parts = self.parts()
        mean_total = float(totals.mean())
        out: dict[str, Any] = {
            "parts": {
                p: {"median_s": float(np.median(v)), "share": float(v.mean()) / mean_total} for p, v in parts.items()
            },
            "calls": len(self.calls),
            "call_median_s": float(np.median(totals)),
        }
        if self.measured_call_s:
            out["measured_call_s"] = self.measured_call_s
            out["vs_measured"] = out["call_median_s"] / self.measured_call_s - 1
        why = self.checks()
        if why:
            out["why"] = "; ".join(why)
        return {"breakdown": out}

    def merge(self, other: BreakdownResult) -> BreakdownResult:
        return BreakdownResult(self.calls + other.calls, self.measured_call_s, self.why_null or other.why_null)

    def against(self, measured_call_s: float) -> BreakdownResult:
        return replace(self, measured_call_s=measured_call_s)


class BreakdownTracker:
    """Wraps a call (``wrap``) and times its phases while started; ``model`` reports tokenization and copies."""

    def __init__(self, model: Any, device: str, module: Any | None) -> None:
        self.model = model
        self.device = device
        self.module = module
        self.sync = dev.synchronizer(device)
        self._stack = contextlib.ExitStack()
        self._handles: list[Any] = []
        self._open: Any = None
        self._host = [0.0] * len(PHASES)  # tokenize, h2d seconds of the call in progress
        self._stamps: list[tuple[Any, Any]] = []
        self._calls: list[tuple[float, float, float, list[tuple[Any, Any]]]] = []
        self.reports_phases = False

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.sync()
        start = dev.clock()
        try:
            yield
        finally:
            self.sync()
            self._host[PHASES.index(name)] += dev.clock() - start  # an unknown phase is a backend bug

    def _pre(self, *_: Any) -> None:
        self.sync()
        self._open = dev.stamp(self.device)

    def _post(self, *_: Any) -> None:
        self._stamps.append((self._open, dev.stamp(self.device)))
        self.sync()

    def wrap(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        def timed() -> Any:
            self._host, self._stamps = [0.0] * len(PHASES), []
            self.sync()
            start = dev.clock()
            out = fn()
            self.sync()
            self._calls.append((dev.clock() - start, self._host[0], self._host[1], self._stamps))
            return out

        return timed

    def start(self) -> None:
        self._calls = []
        self.reports_phases = bool(self._stack.enter_context(self.model.timed_phases(self)))
        if self.module is not None:
            self._handles = [
                self.module.register_forward_pre_hook(self._pre),
                self.module.register_forward_hook(self._post),
            ]

    def stop(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._stack.close()

    def result(self, span: Span) -> BreakdownResult:
        if not self.reports_phases:
            return BreakdownResult((), why_null="this backend does not report its tokenization and copies")
        if self.module is None:
            return BreakdownResult((), why_null="this backend exposes no per-batch module to time forwards on")
        calls = tuple(
            (total, tok, h2d, float(sum(dev.elapsed(self.device, stamps)))) for total, tok, h2d, stamps in self._calls
        )
        return BreakdownResult(calls)
