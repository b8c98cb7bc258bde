"""The gate's verdict as a table: terminal lines, and a Markdown page for CI job summaries."""

from __future__ import annotations

from ..report.tables import Table
from ..trackers.metrics import metric
from .compare import GateReport, MetricComparison

HEADER = ("cell", "metric", "baseline", "now", "change", "95% CI", "threshold", "significance", "verdict")
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


def _row(c: MetricComparison) -> tuple[str, ...]:
    ci = "-" if c.ci is None else f"{c.ci[0] * 100:+.1f}..{c.ci[1] * 100:+.1f}%"
    significance = "deterministic" if c.p_value is None else f"p={c.p_value:.2g}"
    verdict = c.verdict.upper() if c.verdict == "regression" else c.verdict
    change = f"{c.change * 100:+.1f}%"
    threshold = f"{c.threshold * 100:.0f}%"
    return (
        c.cell,
        c.metric,
        _figure(c.metric, c.baseline),
        _figure(c.metric, c.now),
        change,
        ci,
        threshold,
        significance,
        verdict,
    )


def gate_table(report: GateReport) -> Table:
    """Every comparison, regressions first."""
    ordered = sorted(report.comparisons, key=lambda c: (_VERDICT_ORDER[c.verdict], c.cell, c.metric))
    return Table(HEADER, [_row(c) for c in ordered])


def format_gate(report: GateReport) -> list[str]:
    """Terminal lines: the verdict, the warnings, and the comparison table (regressions first)."""
    lines = [f"regression gate: {report.status.upper()}: {report.message}", f"baseline: {report.baseline_path}"]
    lines += [f"WARNING: {w} (figures may move for this reason alone)" for w in report.warnings]
    if report.unmatched:
        lines.append(f"not in the baseline (not compared): {', '.join(report.unmatched)}")
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
    out += [f"- **warning:** {w}" for w in report.warnings]
    if report.unmatched:
        out.append(f"- not in the baseline: {', '.join(f'`{u}`' for u in report.unmatched)}")
    if report.comparisons:
        out += ["", *gate_table(report).markdown(bold={"REGRESSION"})]
    return "\n".join(out) + "\n"
