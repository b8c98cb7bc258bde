"""``RunReport``: everything a run measured, typed, built once per process and merged across xdist workers.

Its JSON form is ``report.json`` (and the ``rerank`` section of pytest-benchmark's JSON); the index page, the
plots, the terminal summary and ``rerank-perf`` all read this one object. Procedure results live in ``results``
by procedure key and write their own top-level fields, so the JSON keeps the names it has always had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import RerankPerfError
from ..gate.outcome import GateReport
from ..measurements import PROCEDURES, MeasurementResult
from ..measurements.data_profile import DataProfiles
from ..measurements.load import LoadResults
from ..measurements.matrix_result import MatrixResult
from ..scenarios import Scenario
from ..scenarios.recommendations import recommend
from ..store.reader import parse_section
from ..store.schema import ModelBaseline

# 2: sections keep per-process medians and the machine fingerprint; verdicts list cells. 3: best_batch_size is keyed
# by workload id (two workloads of one size are two entries), data_profiles, per-request latency
REPORT_VERSION = 3
REPORT_FILE = "report.json"
_REQUIRED = ("report_version", "profile", "model", "cells")


class ReportError(RerankPerfError):
    """A saved report that cannot be read."""


_REWRITE = "Re-run the benchmark to write a fresh report."


def _checked(data: Any, source: Path) -> dict[str, Any]:
    """The report object of a parsed file, its top-level shape checked; the ``rerank`` section of pytest-benchmark's."""
    if isinstance(data, dict) and "rerank" in data and "benchmarks" in data:
        data = data["rerank"]
    if not isinstance(data, dict):
        raise ReportError(f"{source}: not a rerank-perf report (expected a JSON object); pass reports/{REPORT_FILE}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ReportError(
            f"{source}: not a rerank-perf report (missing {', '.join(missing)}); pass reports/{REPORT_FILE} or a "
            "pytest-benchmark JSON written with this plugin active"
        )
    if data["report_version"] != REPORT_VERSION:
        raise ReportError(
            f"{source}: report version {data['report_version']!r}; this rerank-perf reads version {REPORT_VERSION}: "
            "run the benchmark again with this version to write a report it can read"
        )
    wrong = [k for k in ("profile", "model") if not isinstance(data[k] or {}, dict)]
    wrong += [] if isinstance(data["cells"] or [], list) else ["cells"]
    if wrong:
        raise ReportError(f"{source}: malformed report ({', '.join(wrong)} of the wrong type). {_REWRITE}")
    return data


@dataclass
class RunReport:
    created: str
    device: str
    profile: dict[str, Any]
    profile_summary: str
    model: dict[str, Any]  # the run identity: model identity, its key, profile id, device
    results: dict[str, MeasurementResult] = field(default_factory=dict)  # procedure key -> result
    scenarios: list[dict[str, Any]] = field(default_factory=list)  # recommendations
    gate: GateReport | None = None
    gate_enforced: bool = False
    baseline_recorded: str | None = None
    failure: str | None = None  # why the run fails after its tests passed (a refused baseline write)
    section: ModelBaseline | None = None  # this run's cells as a baseline section (gate and diff input)
    devices: list[str] = field(default_factory=list)  # xdist: one per worker

    def result(self, kind: type[MeasurementResult]) -> Any:
        return self.results.get(kind.key)

    @property
    def cells(self) -> list[dict[str, Any]]:
        matrix = self.result(MatrixResult)
        return matrix.cells if matrix else []

    def data_warnings(self) -> list[str]:
        """What the data profile says before any figure: pairs that max_length cuts."""
        profiles = self.result(DataProfiles)
        return profiles.warnings() if profiles else []

    def recommend(self, scenarios: Sequence[Scenario]) -> None:
        load = self.result(LoadResults)
        max_length = self.model.get("max_length")
        self.scenarios = [r.to_dict() for r in recommend(scenarios, self.cells, max_length, load and load.scenarios)]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "report_version": REPORT_VERSION,
            "created": self.created,
            "device": self.device,
            "profile": self.profile,
            "profile_summary": self.profile_summary,
            "model": self.model,
        }
        for kind in PROCEDURES:  # every procedure's keys, empty where it did not run
            result = self.results.get(kind.key)
            data.update(result.report_fields() if result is not None else kind.empty_fields())
        data.update(
            scenarios=self.scenarios,
            gate=self.gate.to_dict() if self.gate else None,
            gate_enforced=self.gate_enforced,
            baseline_recorded=self.baseline_recorded,
            failure=self.failure,
            section=self.section.to_dict() if self.section and self.section.cells else None,
        )
        if self.devices:
            data["devices"] = self.devices
        return data

    @staticmethod
    def from_dict(data: Any, source: Path) -> RunReport:
        """A report from ``report.json`` or from pytest-benchmark's JSON (its ``rerank`` section)."""
        data = _checked(data, source)
        try:
            results = {kind.key: r for kind in PROCEDURES if (r := kind.from_report(data)) is not None}
            gate = GateReport.from_dict(data["gate"]) if data.get("gate") else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a hand-edited or truncated section
            raise ReportError(f"{source}: malformed report ({type(exc).__name__}: {exc}). {_REWRITE}") from None
        section = parse_section(data["section"], source, "section", _REWRITE) if data.get("section") else None
        return RunReport(
            created=data.get("created", "-"),
            device=data.get("device", "-"),
            profile=data["profile"] or {},
            profile_summary=data.get("profile_summary", "-"),
            model=data["model"] or {},
            results=results,
            scenarios=list(data.get("scenarios") or []),
            gate=gate,
            gate_enforced=bool(data.get("gate_enforced")),
            baseline_recorded=data.get("baseline_recorded"),
            failure=data.get("failure"),
            section=section,
            devices=list(data.get("devices") or []),
        )


def _merge_sections(sections: Sequence[ModelBaseline]) -> ModelBaseline | None:
    if not sections:
        return None
    cells = {k: v for s in sections for k, v in s.cells.items()}
    booms = {k: v for s in sections for k, v in s.oom_boundaries.items()}
    first = sections[0]
    return ModelBaseline(first.identity, first.hardware, first.software, first.recorded_at, cells, booms)


def _joined(values: Sequence[str | None]) -> str | None:
    return " | ".join(sorted({v for v in values if v})) or None


def merge_reports(reports: Sequence[RunReport], scenarios: Sequence[Scenario]) -> RunReport:
    """One report from the reports of several xdist workers (one GPU each): cells side by side, tagged by device.

    Each worker compared its own cells with the baseline of its own GPU model; the merged gate fails if any
    worker's did.
    """
    reports = sorted(reports, key=lambda r: r.device)
    results: dict[str, MeasurementResult] = {}
    for report in reports:
        for key, result in report.results.items():
            results[key] = results[key].merge(result) if key in results else result
    gates = [r.gate for r in reports if r.gate]
    gate = gates[0] if gates else None
    for other in gates[1:]:
        gate = gate.merge(other) if gate else other
    if gate and len(gates) > 1:
        gate = replace(gate, message=f"{len(gates)} workers: " + " | ".join(g.message for g in gates))
    merged = RunReport(
        created=reports[0].created,
        device=", ".join(r.device for r in reports),
        profile=reports[0].profile,
        profile_summary=" | ".join(sorted({r.profile_summary for r in reports})),
        model=reports[0].model,
        results=results,
        gate=gate,
        gate_enforced=any(r.gate_enforced for r in reports),
        baseline_recorded=_joined([r.baseline_recorded for r in reports]),
        failure=_joined([r.failure for r in reports]),
        section=_merge_sections([r.section for r in reports if r.section]),
        devices=[r.device for r in reports],
    )
    merged.recommend(scenarios)
    return merged
