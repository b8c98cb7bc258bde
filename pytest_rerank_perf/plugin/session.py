"""``RerankSession``: what one pytest process measured, and what it does with it at the end.

Tests hand results over with ``add``; at session finish the session records the baseline or runs the gate
(``finish``), builds the one ``RunReport``, and (``conclude``) writes the report folder and sets the exit status.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ..errors import RerankPerfError
from ..fsutil import write_atomic
from ..gate.judge import gate, planned_cells, throttled_cells, unwatched_cells
from ..gate.thresholds import GateSettings
from ..gate.verdict import gate_markdown
from ..machine import fingerprint
from ..machine.hardware import HardwareProfile
from ..measurements import MeasurementResult
from ..measurements.cell import Cell, CellResult
from ..measurements.matrix_result import MatrixResult
from ..measurements.oom_boundary import OomBoundaries
from ..report.folder import write_report
from ..report.run_report import RunReport, merge_reports
from ..store import BaselineError, BaselineProfile, BaselineStore, open_store, record_command, section_from_cells
from ..store.merging import clash_error, clashes, pool_processes
from ..store.schema import ModelBaseline, cell_key, now_utc
from ..workloads.workload import Workload
from .interrupts import held
from .options import RerankOptions
from .partial import PartialLog
from .processes import matrix_items, pooled_reports, test_files


class RerankSession:
    def __init__(self, options: RerankOptions, rootdir: Path) -> None:
        self.options = options
        self.rootdir = rootdir
        self.results: dict[str, MeasurementResult] = {}
        self.identity: dict[str, Any] | None = None  # the run identity, once a model is loaded
        self.workloads: dict[str, Workload] = {}  # by workload id: built once per (source, num_pairs)
        self.data_lengths: dict[str, list[int]] = {}  # a data file's encoded lengths, by its id
        self.store: BaselineStore | None = None
        self.baseline: BaselineProfile | None = None  # read (and validated) before the first cell runs
        self.report: RunReport | None = None
        self.worker_reports: list[RunReport] = []  # xdist controller: one per worker
        self.pooled_cells: list[dict[str, Any]] = []  # the pooled processes' cells (their throttle state)
        self.partial = PartialLog(self.report_dir, os.environ.get("PYTEST_XDIST_WORKER", ""))  # kept as it goes
        self.phase = "at the end of the run"  # what the session's end is doing: an interrupt's line names it
        self.set_aside_to: str | None = None  # where a refused recording's cells went
        self.interrupted: str | None = None  # the one line an interrupted run ends with (``winddown``)

    @property
    def report_dir(self) -> Path:
        path = Path(self.options.report_dir)
        return path if path.is_absolute() else self.rootdir / path

    # --- results ----------------------------------------------------------------------------------------------

    def add(self, result: MeasurementResult) -> None:
        """A procedure's result; a second one of the same procedure merges into the first."""
        old = self.results.get(result.key)
        self.results[result.key] = old.merge(result) if old is not None else result

    def add_cell(self, result: CellResult) -> None:
        cell = result.to_dict()
        self.add(MatrixResult([cell]))
        self.partial.add_cell(cell)  # a run stopped before its end keeps it

    @property
    def measured(self) -> bool:
        return bool(self.results)

    # --- the baseline -----------------------------------------------------------------------------------------

    def open_baseline(self, items: Sequence[pytest.Item], profile_id: str, key: str) -> None:
        """Read the baseline before anything is measured: a corrupt file, or a record that would overwrite cells
        without --rerank-force, stops the run now instead of after minutes of measuring."""
        opts = self.options
        try:
            self.store = open_store(opts.baseline_dir, self.rootdir)
            self.baseline = self.store.load(profile_id)
            found = clashes(self.baseline, key, self._planned_cells(items))
        except (BaselineError, RerankPerfError) as exc:
            pytest.exit(f"rerank-perf: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        if opts.save_baseline and found and not (opts.force or opts.append):
            pytest.exit(f"rerank-perf: {clash_error(key, found)}", returncode=pytest.ExitCode.USAGE_ERROR)

    def _planned_cells(self, items: Sequence[pytest.Item]) -> list[str]:
        specs = [getattr(item, "callspec", None) for item in items]
        cells = [Cell.of(s.params["rerank_cell"]) for s in specs if s is not None and "rerank_cell" in s.params]
        return [cell_key(self.options.workload_id(c.num_pairs), c.batch_size, c.variant) for c in cells]

    # --- the end of the run -----------------------------------------------------------------------------------

    def build_report(self, device: str, profile: HardwareProfile) -> RunReport:
        report = RunReport(
            created=now_utc(),
            device=device,
            profile=profile.to_dict(),
            profile_summary=profile.summary(),
            model=self.identity or {},
            results=dict(self.results),
        )
        report.recommend(self.options.scenarios)
        return report

    def section(self, report: RunReport, device: str, profile: HardwareProfile) -> ModelBaseline | None:
        """This run's cells as a baseline section, with the machine's fingerprint; None when nothing was planned."""
        booms = report.result(OomBoundaries)
        if self.identity is None or not (report.cells or booms):
            return None
        gpu = profile.to_dict().get("gpu")
        self.phase = "while the machine fingerprint was measured"
        hardware = {**profile.to_dict(), "fingerprint": fingerprint.measure(device, gpu).to_dict()}
        return section_from_cells(report.cells, self.identity, hardware, booms.max_batches() if booms else {})

    def finish(
        self,
        device: str,
        profile: HardwareProfile,
        unfinished: str | None = None,
        pooled: Sequence[ModelBaseline] = (),
    ) -> RunReport:
        """Record the baseline or run the gate, then build this process's report. ``unfinished``: why the run did
        not complete (interrupted, a failed test): it then never records. ``pooled``: other processes' sections."""
        report = self.report = self.build_report(device, profile)
        section = self.section(report, device, profile)
        if section is None or self.store is None or self.identity is None:
            return report
        report.section = section = pool_processes(section, pooled)
        key = self.identity["key"]
        if self.options.save_baseline:
            self.phase = "while the baseline was recorded"
            with held():  # never cut in half: an interrupt waits until the cells are recorded or set aside
                self._record(report, section, profile, self.store, key, unfinished)
        elif self.options.gate != "off":
            self.phase = "while the regression gate judged"
            self._gate(report, section, profile, self.store, key)
        return report

    def _record(
        self,
        report: RunReport,
        section: ModelBaseline,
        profile: HardwareProfile,
        store: BaselineStore,
        key: str,
        unfinished: str | None,
    ) -> None:
        opts = self.options
        throttled = throttled_cells([*report.cells, *self.pooled_cells])
        try:
            if unfinished:  # an interrupted or failing run would mix its few cells with the last full recording
                raise BaselineError(f"not recorded: {unfinished}; only a complete run records.")
            if throttled:  # a throttled GPU's figures must never become the reference
                raise BaselineError(
                    f"not recorded: {', '.join(sorted(throttled))} ran on a throttled GPU; record again once the "
                    "GPU is cool and unthrottled."
                )
            store.record(profile.profile_id, key, section, opts.force, opts.append)
            report.baseline_recorded = store.location(profile.profile_id)
        except BaselineError as exc:  # nothing is lost: this run's cells go to a side file
            self.set_aside_to = side = store.set_aside(profile.profile_id, key, section, now_utc())
            report.failure = f"{exc} This run's cells were saved to {side}."

    def _gate(
        self, report: RunReport, section: ModelBaseline, profile: HardwareProfile, store: BaselineStore, key: str
    ) -> None:
        opts = self.options
        stored = self.baseline.models.get(key) if self.baseline else None
        settings = GateSettings.for_device(profile.kind, opts.thresholds, opts.alpha)
        cells = report.cells
        report.gate = gate(
            stored,
            section,
            settings,
            store.location(profile.profile_id),
            key,
            planned_cells(cells),
            throttled_cells([*cells, *self.pooled_cells]),  # a cell throttled in any pooled process
            unwatched_cells(cells),
            record_hint=record_command(self.rootdir) + (f" --rerank-workload {opts.data.path}" if opts.data else ""),
        )
        report.gate_enforced = opts.gate == "enforce" or (opts.gate == "auto" and profile.kind == "cuda")

    def pool_processes(
        self, config: pytest.Config, items: Sequence[pytest.Item], report_dir: Path, unfinished: str | None
    ) -> tuple[list[ModelBaseline], str | None]:
        """``--rerank-processes K``: measure the matrix in K-1 more processes (sections, or why that failed)."""
        opts = self.options
        wanted = opts.processes > 1 and (opts.save_baseline or opts.gate != "off")
        if not wanted or unfinished or MatrixResult.key not in self.results:
            return [], None
        matrix = matrix_items(items)
        tests = test_files(matrix)
        self.phase = "while the pooled processes ran"
        try:
            reports = pooled_reports(config, tests, report_dir / "processes", len(matrix))
        except RerankPerfError as exc:
            return [], f"--rerank-processes {opts.processes}: {exc}"
        self.pooled_cells = [cell for report in reports for cell in report.cells]
        return [report.section for report in reports if report.section is not None], None

    def merge_workers(self) -> RunReport:
        self.report = merge_reports(self.worker_reports, self.options.scenarios)
        return self.report

    def conclude(self, session: pytest.Session, report_dir: Path) -> None:
        """Write the report folder and the gate's verdict files; fail the run where the gate or a record says so."""
        report = self.report
        if report is None:
            return
        self.phase = "while the report was written"
        write_report(report, report_dir)
        if self.options.require_baseline and not self.options.save_baseline and (report.cells or report.gate):
            shortfall = report.gate.shortfall() if report.gate else "no comparison was made (--rerank-gate off)"
            if shortfall:
                report.failure = f"--rerank-require-baseline: not a full comparison: {shortfall}"
        if report.gate:
            self.write_verdict(report_dir)
            if report.gate.status in ("fail", "incomplete") and report.gate_enforced:
                _fail(session)
        if report.failure:
            _fail(session)
        self.partial.discard()  # the run ended: its report supersedes what was kept as it went

    def write_verdict(self, report_dir: Path) -> None:
        """The gate's verdict files; with no verdict, an earlier run's are removed (they would pass for this run's)."""
        verdict, summary = report_dir / "rerank-verdict.json", report_dir / "rerank-summary.md"
        report = self.report
        if report is None or report.gate is None:
            for path in (verdict, summary):
                path.unlink(missing_ok=True)
            return
        write_atomic(verdict, json.dumps(report.gate.to_dict(), indent=1) + "\n")
        write_atomic(summary, gate_markdown(report.gate, report.profile_summary))


def _fail(session: pytest.Session) -> None:
    """Fail a run that would otherwise exit 0; an interrupted or usage-error exit keeps its own code."""
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
