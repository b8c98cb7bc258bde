"""The terminal summary of a run: what was measured, each procedure's lines, scenarios, the baseline and the gate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..gate.verdict import format_gate
from ..measurements import PROCEDURES
from ..measurements.load import LoadResults
from ..report.run_report import REPORT_FILE, RunReport
from ..scenarios import Scenario
from .options import RerankOptions


def _scenario_line(r: Mapping[str, Any], s: Scenario | None) -> str:
    slo = f"p99 <= {s.p99_s * 1e3:.0f} ms" if s and s.p99_s else "no SLO"
    pairs = r.get("pairs") or (s.pairs_text if s else "?")
    head = f"{r['scenario']:<11} ({pairs} pairs, {slo}): "
    if r["batch_size"] is None:
        return head + "nothing measured fits. " + "; ".join(r.get("notes") or [])
    notes = " ".join(f"({n})" for n in r.get("notes") or [])  # what it was judged on, where that is not obvious
    if r.get("server"):
        return head + f"{r['server']} at {r['max_rate']:,.1f} req/s. {r['margin']} {notes}".rstrip()
    variant = r.get("variant") or "predict"
    choice = f"batch_size {r['batch_size']}" if variant == "predict" else f"{variant}, batch_size {r['batch_size']}"
    return head + f"{choice} ({r['pairs_per_s']:,.1f} pairs/s). {r['margin']} {notes}".rstrip()


def write_summary(tr: Any, report: RunReport, opts: RerankOptions, header: Sequence[str]) -> None:
    """The outcome first (the gate's verdict, or the recorded baseline, and any failure), then what was measured: a
    CI log shows the verdict where the section starts, the report folder holds everything."""
    tr.write_sep("=", "rerank-perf summary")
    _outcome(tr, report, opts)
    tr.write_sep("-", "rerank-perf measurements")
    for line in header:
        tr.write_line(line)
    for warning in report.data_warnings():
        tr.write_line(f"rerank-perf: {warning}", yellow=True, bold=True)
    model = report.model
    if model:
        shape = model.get("architecture", "?")
        tr.write_line(
            f"rerank-perf: model key {model['key']} ({model['parameters']:,} parameters, architecture {shape})"
        )
    if report.devices:
        tr.write_line(f"rerank-perf: merged from {len(report.devices)} xdist workers on {', '.join(report.devices)}")
    tr.write_line("")
    for kind in PROCEDURES:
        result = report.result(kind)
        for line in result.summary_lines() if result else []:
            tr.write_line(line)
    if report.scenarios and (report.cells or report.result(LoadResults)):
        tr.write_sep("-", "rerank-perf scenario recommendations")
        limits = {s.name: s for s in opts.scenarios}
        for r in report.scenarios:
            tr.write_line(_scenario_line(r, limits.get(r["scenario"])))


def _outcome(tr: Any, report: RunReport, opts: RerankOptions) -> None:
    verdict = report.gate
    if verdict:
        failed = verdict.status in ("fail", "incomplete")
        for line in format_gate(verdict):
            tr.write_line(line, red=failed and line.startswith("regression gate"), bold=line.startswith("regression"))
        tr.write_line(f"written: {opts.report_dir}/rerank-summary.md, {opts.report_dir}/rerank-verdict.json")
        if failed and not report.gate_enforced:
            tr.write_line(
                "ADVISORY: the gate does not fail CPU-fallback runs by default: a shared CPU drifts by up to ~35% "
                "between runs (docs/gate.md, Detection power). --rerank-gate enforce makes it fail."
            )
    if report.baseline_recorded:
        shown = report.baseline_recorded
        tr.write_line(f"baseline recorded: wrote {shown}; commit it with:")
        tr.write_line(f"    git add {shown} && git commit -m 'Baseline: {shown}'")
    if report.failure:
        tr.write_line(f"rerank-perf: FAILED: {report.failure}", red=True)
    tr.write_line(f"report: {opts.report_dir}/index.md, {opts.report_dir}/{REPORT_FILE} and plots")
