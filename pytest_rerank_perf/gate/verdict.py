"""The gate's verdict as a table: terminal lines, and a Markdown page for CI job summaries."""

from __future__ import annotations

from ..report.tables import Table
from ..store.schema import cell_sort_key
from ..trackers.metrics import metric
from .compare import MetricComparison
from .outcome import GateReport

HEADER = (
    "cell",
    "metric",
    "baseline",
    "now",
    "change",
    "95% CI",
    "threshold",
    "min detectable",
    "processes",
    "significance",
    "verdict",
)
_VERDICT_ORDER = {"regression": 0, "improvement": 1, "unchanged": 2}
_STATUS = {"pass": "PASS", "fail": "FAIL", "incomplete": "INCOMPLETE", "no-baseline": "NO BASELINE"}


def _figure(name: str, value: float) -> str:
    """A compared figure with its unit: durations in ms and sizes in MiB, finer than the matrix tables show."""
    m = metric(name)
    if m.unit in ("s", "s/batch"):
        return f"{value * 1e3:.3f} ms"
    if m.unit == "bytes":
        return f"{value / 2**20:,.1f} MiB"
    shown = m.fmt(value)
    return shown if m.unit in shown else f"{shown} {m.unit}"


def _significance(c: MetricComparison) -> str:
    if c.p_value is None:
        return "deterministic"
    drift = "" if c.drift_p is None else f", processes p={c.drift_p:.2g}"
    return f"rounds p={c.p_value:.2g}{drift}"


def _row(c: MetricComparison) -> tuple[str, ...]:
    m = metric(c.metric)
    ci = "-" if c.ci is None else f"{c.ci[0] * 100:+.1f}..{c.ci[1] * 100:+.1f}%"
    return (
        c.cell,
        f"{c.metric} ({m.described})" if m.described else c.metric,
        _figure(c.metric, c.baseline),
        _figure(c.metric, c.now),
        f"{c.change * 100:+.1f}%",
        ci,
        f"{c.threshold * 100:.0f}%",
        "-" if c.mdr is None else f"{c.mdr * 100:.1f}%",
        "-" if c.p_value is None else f"{c.processes[0]} vs {c.processes[1]}",
        _significance(c),
        c.verdict.upper() if c.verdict == "regression" else c.verdict,
    )


def gate_table(report: GateReport) -> Table:
    """Every comparison, regressions first, cells in numeric order."""
    ordered = sorted(
        report.comparisons, key=lambda c: (_VERDICT_ORDER[c.verdict], cell_sort_key(c.cell), c.cell, c.metric)
    )
    return Table(HEADER, [_row(c) for c in ordered])


def _cell_lists(report: GateReport) -> list[tuple[str, str]]:
    """(label, text) for every planned or baseline cell that was not compared."""
    out = [("LOST (regression)", c.describe()) for c in report.lost]
    if report.new_cells:
        out.append(("new, not in the baseline (not compared)", ", ".join(report.new_cells)))
    if report.vanished:
        out.append(("in the baseline, not planned in this run", ", ".join(report.vanished)))
    return out


def format_gate(report: GateReport) -> list[str]:
    """Terminal lines: the verdict, the warnings, the cells not compared and the comparison table."""
    lines = [f"regression gate: {report.status.upper()}: {report.message}", f"baseline: {report.baseline_path}"]
    if report.drift:
        lines.append(f"noise: {report.drift}")
    lines += [f"WARNING: {w} (figures may move for this reason alone)" for w in report.warnings]
    lines += [f"{label}: {text}" for label, text in _cell_lists(report)]
    if report.comparisons:
        lines += ["", *gate_table(report).text()]
    if report.improvements:
        lines.append(f"{len(report.improvements)} improvement(s): refresh the baseline with --rerank-force.")
    return lines


def gate_markdown(report: GateReport, profile_summary: str) -> str:
    """The same verdict as a Markdown page, e.g. for ``$GITHUB_STEP_SUMMARY``."""
    out = [
        f"## rerank-perf regression gate: {_STATUS[report.status]}",
        "",
        f"- {report.message}",
        f"- profile: {profile_summary}",
        f"- model: `{report.model_key}`",
        f"- baseline: `{report.baseline_path}`",
    ]
    if report.drift:
        out.append(f"- noise: {report.drift}")
    out += [f"- **warning:** {w}" for w in report.warnings]
    out += [f"- **{label}:** {text}" for label, text in _cell_lists(report)]
    if report.comparisons:
        out += ["", *gate_table(report).markdown(bold={"REGRESSION"})]
    return "\n".join(out) + "\n"
