"""The self-check: the harness's own assumptions, measured on this machine before its figures are trusted.

Each check returns a ``Check`` (what, the measured value, a verdict): ``pass``; ``warn`` (the figures stand, with a
caveat the note names); ``fail`` (figures measured here would mislead); ``n/a`` (a GPU check on the CPU).
``nox -s gpu-selfcheck`` runs them all (``benchmarks/selfcheck``); ``spread.py`` holds the multi-process check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from ..backends import Pair, Reranker
from ..machine import device as dev
from ..machine import nvml
from ..tables import Table
from ..trackers import BatchTracker, Span
from ..trackers.memory import NvmlSampler
from ..workloads.workload import Workload
from .matrix import CellRunner, Unbenchmarked

Verdict = Literal["pass", "warn", "fail", "n/a"]
MiB = 2**20


@dataclass(frozen=True)
class Check:
    name: str
    measured: str
    verdict: Verdict
    note: str = ""


def not_on_cpu(name: str) -> Check:
    return Check(name, "-", "n/a", "a GPU check: nothing to check on the CPU")


def events_agree_with_wall_time(model: Reranker, pairs: Sequence[Pair]) -> Check:
    """One long batch, timed by CUDA events around the forward and by the synchronised wall clock around the call.
    The events must cover most of the call (tokenising is the rest) and never more than all of it."""
    name = "CUDA events vs synchronised wall time"
    if not dev.is_cuda(model.device):
        return not_on_cpu(name)
    tracker = BatchTracker(model.batch_module(), model.device)
    model.predict(pairs, len(pairs))  # warm-up
    dev.synchronize(model.device)
    tracker.start()
    start = dev.clock()
    model.predict(pairs, len(pairs))
    dev.synchronize(model.device)
    wall = dev.clock() - start
    tracker.stop()
    forward = sum(tracker.result(Span(1, len(pairs), 1)).seconds)
    ratio = forward / wall
    measured = f"forward {forward * 1e3:.1f} ms of a {wall * 1e3:.1f} ms call ({ratio:.0%})"
    if ratio > 1.02:
        return Check(name, measured, "fail", "events claim more time than the call took: they time another stream")
    if ratio < 0.5:
        return Check(name, measured, "fail", "events miss most of the call: is the work on another device?")
    return Check(name, measured, "pass", "the rest is tokenising and copying on the host")


def memory_returns_to_resident(model: Reranker, pairs: Sequence[Pair]) -> Check:
    """After a batch, emptying the cache and resetting the peaks must bring them back to the resident weights:
    otherwise each cell's peak carries what the one before it left."""
    name = "peak memory resets to the resident weights"
    device = model.device
    if not dev.is_cuda(device):
        return not_on_cpu(name)
    dev.free_memory(device)
    resident = dev.allocated(device) or 0
    model.predict(pairs, len(pairs))
    dev.free_memory(device)
    dev.reset_peaks(device)
    allocated, reserved = dev.peaks(device)
    left, cached = (allocated or 0) - resident, (reserved or 0) - (allocated or 0)
    measured = (
        f"resident {resident / MiB:,.0f} MiB; after reset +{left / MiB:.1f} MiB held, {cached / MiB:.0f} MiB cached"
    )
    ok = left <= MiB and cached <= max(256 * MiB, resident // 20)
    return Check(name, measured, "pass" if ok else "fail", "" if ok else "a cell's peak would include earlier work")


def nvml_sees_this_process(device: str) -> Check:
    name = "NVML sees this process"
    if not dev.is_cuda(device):
        return not_on_cpu(name)
    sampler = NvmlSampler(device)
    sampler.start()
    sampler.stop()
    if sampler.peak_process is not None:
        return Check(name, f"{sampler.peak_process / MiB:,.0f} MiB", "pass")
    why = sampler.why_null.get("nvml_peak_process_bytes", "unknown")
    return Check(name, "no", "warn", f"per-process VRAM will be null: {why}; torch's figures still stand")


def no_other_process(device: str) -> Check:
    """Another process on the GPU competes for its SMs and memory bandwidth: its figures would not be this code's."""
    name = "no other process on the GPU"
    if not dev.is_cuda(device):
        return not_on_cpu(name)
    try:
        pynvml, handle = nvml.device_handle(device)
        procs = list(pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except Exception as exc:
        return Check(name, "unknown", "warn", f"NVML cannot list processes ({type(exc).__name__}: {exc})")
    mine = any(p.pid == os.getpid() for p in procs)
    others = len(procs) - 1 if procs and not mine else sum(p.pid != os.getpid() for p in procs)
    measured = f"{len(procs)} process(es) listed" + ("" if mine else " (host pids: this one is not recognisable)")
    if others > 0:
        return Check(name, measured, "fail", f"{others} other process(es) share this GPU: stop them, then measure")
    if not procs:  # not even this one: NVML cannot see processes here, so it cannot see others either
        return Check(name, measured, "warn", "NVML lists no process at all here: others cannot be ruled out")
    return Check(name, measured, "pass")


def clocks_during_a_cell(runner: CellRunner, workload: Workload, batch_size: int) -> Check:
    """SM clocks and throttle reasons sampled while a cell's rounds ran."""
    name = "SM clocks during a measured cell"
    if not dev.is_cuda(runner.device):
        return not_on_cpu(name)
    cell = runner.run(Unbenchmarked(), workload, batch_size).to_dict()
    clocks = cell.get("clocks")
    if cell["status"] != "ok" or not clocks:
        why = (cell.get("why_null") or {}).get("clocks") or cell.get("reason") or "unknown"
        return Check(name, "unknown", "warn", f"no clock samples: {why}")
    reasons = ", ".join(clocks["reasons"]) or "none"
    measured = (
        f"median {clocks['sm_mhz_median']} MHz (min {clocks['sm_mhz_min']}) of {clocks['max_sm_mhz']} max; "
        f"throttle reasons: {reasons}"
    )
    if cell["throttled"]:
        return Check(name, measured, "fail", "thermally or hardware throttled: such cells are flagged, not compared")
    return Check(name, measured, "pass")


@dataclass
class SelfCheckResult:
    key: ClassVar[str] = "selfcheck"
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "fail"]

    def report_fields(self) -> dict[str, Any]:
        return {"selfcheck": [asdict(c) for c in self.checks]}

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"selfcheck": []}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> SelfCheckResult | None:
        checks = data.get("selfcheck") or []
        return cls([Check(**c) for c in checks]) if checks else None

    def merge(self, other: SelfCheckResult) -> SelfCheckResult:
        return SelfCheckResult(self.checks + other.checks)

    def table(self) -> Table:
        rows = [(c.name, c.verdict.upper(), c.measured, c.note) for c in self.checks]
        title = "self-check: the harness's assumptions on this machine"
        return Table(("check", "verdict", "measured", "note"), rows, title, left_columns=4)

    def summary_lines(self) -> list[str]:
        return self.table().text()

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        return ["", "## Self-check", "", *self.table().markdown()]
