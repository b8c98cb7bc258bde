"""The regression gate: every cell this run planned against the baseline section for the same profile and model.

It fails closed: every planned cell that the baseline holds must produce a comparison. A cell that now runs out of
memory or is skipped where the baseline measured it is a regression; a throttled cell, a different machine or a run
that compared nothing is ``incomplete``; baseline cells this run did not plan, and new cells, are listed by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..store.schema import ModelBaseline, key_of
from .compare import MetricComparison, compare_cell, compare_value, drifts_for, environment_warnings
from .drift import Drift
from .machine import machine_difference
from .outcome import GateReport, LostCell, Status
from .thresholds import GateSettings

# cell key -> (status, reason) of each planned cell: "ok", or why it has no figures ("oom", "skipped")
Planned = Mapping[str, tuple[str, str]]


def planned_cells(cells: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """What a run planned, from its matrix cells (report JSON): every cell that reached the runner, measured or not."""
    return {key_of(c): (str(c.get("status", "ok")), str(c.get("reason") or "")) for c in cells}


def throttled_cells(cells: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Cell key -> throttle reasons, for the cells (report JSON) measured while the GPU was throttled."""
    return {key_of(c): (c.get("clocks") or {}).get("reasons") or ["unknown"] for c in cells if c.get("throttled")}


def unwatched_cells(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """GPU cells whose throttle state is unknown (no NVML clocks): compared, with a warning."""
    return [
        key_of(c)
        for c in cells
        if c.get("status") == "ok" and str(c.get("device", "")).startswith("cuda") and c.get("throttled") is None
    ]


def _boundaries(base: ModelBaseline, now: ModelBaseline, settings: GateSettings) -> list[MetricComparison]:
    if not settings.judges("max_batch"):
        return []
    return [
        compare_value(f"oom-boundary/L{length}", "max_batch", base.oom_boundaries[length], now_max, settings)
        for length, now_max in now.oom_boundaries.items()
        if base.oom_boundaries.get(length)
    ]


def _status(
    comparisons: Sequence[MetricComparison], lost: Sequence[LostCell], throttled: bool, compared_cells: bool
) -> Status:
    """``compared_cells``: a matrix cell was compared, or none was planned (an OOM boundary alone compares no
    workload, so it cannot stand in for the matrix)."""
    if lost or any(c.verdict == "regression" for c in comparisons):
        return "fail"
    return "incomplete" if throttled or not comparisons or not compared_cells else "pass"


def _message(status: Status, comparisons: Sequence[MetricComparison], lost: Sequence[LostCell], alpha: float) -> str:
    regressions = sum(c.verdict == "regression" for c in comparisons)
    if status == "fail":
        parts = [f"{regressions} regression(s) beyond threshold and significant at p < {alpha}"] if regressions else []
        parts += [f"{len(lost)} cell(s) measured in the baseline did not run now"] if lost else []
        return "; ".join(parts)
    if not comparisons or not any(c.metric != "max_batch" for c in comparisons):
        return "compared nothing: no planned cell is in the baseline (different workload, matrix or model?)"
    return f"no significant regression in {len(comparisons)} comparisons"


def _warnings(
    base: ModelBaseline,
    now: ModelBaseline,
    throttled: Mapping[str, Sequence[str]],
    unwatched: Sequence[str],
    drifts: Mapping[str, Drift],
) -> tuple[str, ...]:
    """What may move the figures besides the code: software, throttling, an unknown throttle state, assumed drift."""
    warnings = [*environment_warnings(base, now.hardware, now.software)]
    warnings += [
        f"{key} was measured while the GPU was throttled ({', '.join(reasons)}): not compared; let it cool or check "
        "its power and cooling, then run again"
        for key, reasons in sorted(throttled.items())
    ]
    if unwatched:
        warnings.append(f"the GPU's throttle state is unknown for {len(unwatched)} cell(s) (see why_null.throttled)")
    if any(not d.measured for d in drifts.values()):
        warnings.append("between-process drift not measured: pool processes with --rerank-processes")
    return tuple(warnings)


def gate(
    base: ModelBaseline | None,
    now: ModelBaseline,
    settings: GateSettings,
    baseline_path: str,
    model_key: str,
    planned: Planned | None = None,
    throttled: Mapping[str, Sequence[str]] | None = None,
    unwatched: Sequence[str] = (),
    record_hint: str = "--rerank-save-baseline",
) -> GateReport:
    """Judge this run. ``planned``: every cell the run planned with its outcome (default: the measured cells);
    a cell measured on a throttled GPU (``throttled``: cell key -> reasons) is not compared."""
    planned = dict(planned) if planned is not None else {key: ("ok", "") for key in now.cells}
    keys = tuple(planned)
    if base is None:
        message = f"no baseline for {model_key} in {baseline_path}; record one with `{record_hint}`"
        return GateReport("no-baseline", baseline_path, model_key, new_cells=keys, planned=keys, message=message)
    # a cell that ran out of memory now and is absent from the baseline (which stores measured cells only) is no
    # new cell: it most likely did not fit then either
    new = tuple(k for k, (status, _) in planned.items() if k not in base.cells and status == "ok")
    vanished = tuple(k for k in base.cells if k not in planned)
    other_machine = machine_difference(base.hardware, now.hardware)
    if other_machine:
        message = f"different machine: {other_machine}; nothing compared. Record a baseline on this machine."
        return GateReport("incomplete", baseline_path, model_key, (), new, vanished, (), keys, message=message)
    throttled = throttled or {}
    drifts = drifts_for(base, now, settings, skip=throttled)
    comparisons: list[MetricComparison] = []
    lost: list[LostCell] = []
    for key, (status, reason) in planned.items():
        if key not in base.cells or key in throttled:
            continue
        if status != "ok" or key not in now.cells:
            lost.append(LostCell(key, status, reason or "no figures"))
            continue
        comparisons += compare_cell(base.cells[key], now.cells[key], settings, drifts)
    compared_cells = bool(comparisons) or not planned
    comparisons += _boundaries(base, now, settings)
    status = _status(comparisons, lost, bool(throttled), compared_cells)
    message = _message(status, comparisons, lost, settings.alpha)
    if throttled and status != "fail":
        message = f"{len(throttled)} cell(s) measured on a throttled GPU were not compared; {message}"
    warnings = _warnings(base, now, throttled, unwatched, drifts)
    drift = "; ".join(f"{name}: {d.describe()}" for name, d in drifts.items() if settings.judges(name))
    return GateReport(
        status, baseline_path, model_key, tuple(comparisons), new, vanished, tuple(lost), keys, warnings, message, drift
    )
