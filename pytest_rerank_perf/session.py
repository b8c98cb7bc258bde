"""``RerankSession``: what one pytest process measured, and what it does with it at the end.

Tests hand results over with ``add``; at session finish the session records the baseline or runs the gate
(``finish``), builds the one ``RunReport``, and (``conclude``) writes the report folder and sets the exit status.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from .errors import RerankPerfError
from .fsutil import write_atomic
from .gate.compare import gate, throttled_cells, unwatched_cells
from .gate.thresholds import GateSettings
from .gate.verdict import gate_markdown
from .hardware import HardwareProfile
from .measurements import MeasurementResult
from .measurements.cell import CellResult
from .measurements.matrix_result import MatrixResult
from .measurements.oom_boundary import OomBoundaries
from .options import RerankOptions
from .report.folder import write_report
from .report.run_report import RunReport, merge_reports
from .store import BaselineError, BaselineProfile, BaselineStore, open_store, section_from_cells
from .store.merging import clash_error, clashes
from .store.schema import cell_key, now_utc
from .workload import Workload


class RerankSession:
    def __init__(self, options: RerankOptions, rootdir: Path) -> None:
        self.options = options
        self.rootdir = rootdir
        self.results: dict[str, MeasurementResult] = {}
        self.identity: dict[str, Any] | None = None  # the run identity, once a model is loaded
        self.workloads: dict[tuple[str, int], Workload] = {}  # built once per (spec, num_pairs)
        self.store: BaselineStore | None = None
        self.baseline: BaselineProfile | None = None  # read (and validated) before the first cell runs
        self.report: RunReport | None = None
        self.worker_reports: list[RunReport] = []  # xdist controller: one per worker

    # --- results ----------------------------------------------------------------------------------------------

    def add(self, result: MeasurementResult) -> None:
        """A procedure's result; a second one of the same procedure merges into the first."""
        old = self.results.get(result.key)
        self.results[result.key] = old.merge(result) if old is not None else result

    def add_cell(self, result: CellResult) -> None:
        self.add(MatrixResult([result.to_dict()]))

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
        spec = self.options.workload_spec().id
        specs = [getattr(item, "callspec", None) for item in items]
        cells = [s.params["rerank_cell"] for s in specs if s is not None and "rerank_cell" in s.params]
        return [cell_key(f"{spec}-n{c.num_pairs}", c.batch_size) for c in cells]

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

    def finish(self, device: str, profile: HardwareProfile) -> RunReport:
        """Record the baseline or run the gate, then build this process's report."""
        report = self.report = self.build_report(device, profile)
        if self.identity is None or self.store is None:
            return report
        matrix, booms = report.result(MatrixResult), report.result(OomBoundaries)
        cells = matrix.cells if matrix else []
        section = section_from_cells(cells, self.identity, profile.to_dict(), booms.max_batches() if booms else {})
        if not section.cells and not section.oom_boundaries:
            return report
        report.section = section
        key, opts = self.identity["key"], self.options
        shown = self.store.location(profile.profile_id)
        throttled = throttled_cells(cells)
        if opts.save_baseline:
            try:
                if throttled:  # a throttled GPU's figures must never become the reference
                    raise BaselineError(
                        f"not recorded: {', '.join(sorted(throttled))} ran on a throttled GPU; record again once the "
                        "GPU is cool and unthrottled."
                    )
                self.store.record(profile.profile_id, key, section, opts.force, opts.append)
                report.baseline_recorded = shown
            except BaselineError as exc:  # nothing is lost: this run's cells go to a side file
                side = self.store.set_aside(profile.profile_id, key, section, now_utc())
                report.failure = f"{exc} This run's cells were saved to {side}."
            return report
        if opts.gate == "off":
            return report
        stored = self.baseline.models.get(key) if self.baseline else None
        settings = GateSettings.for_device(profile.kind, opts.thresholds, opts.alpha)
        report.gate = verdict = gate(stored, section, settings, shown, key, throttled, unwatched_cells(cells))
        report.gate_enforced = opts.gate == "enforce" or (opts.gate == "auto" and profile.kind == "cuda")
        if verdict.status == "no-baseline" and opts.require_baseline:
            report.failure = f"--rerank-require-baseline: {verdict.message}"
        return report

    def merge_workers(self) -> RunReport:
        self.report = merge_reports(self.worker_reports, self.options.scenarios)
        return self.report

    def conclude(self, session: pytest.Session, report_dir: Path) -> None:
        """Write the report folder and the gate's verdict files; fail the run where the gate or a record says so."""
        report = self.report
        if report is None:
            return
        write_report(report, report_dir)
        if report.gate:
            write_atomic(report_dir / "rerank-verdict.json", json.dumps(report.gate.to_dict(), indent=1) + "\n")
            write_atomic(report_dir / "rerank-summary.md", gate_markdown(report.gate, report.profile_summary))
            if report.gate.status in ("fail", "incomplete") and report.gate_enforced:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if report.failure:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
