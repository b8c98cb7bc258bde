"""The gate's verdict as a table: terminal lines, and a Markdown page for CI job summaries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..store.schema import cell_sort_key, split_cell_key
from ..tables import Table
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
    "min detectable regression",
    "processes",
    "significance",
    "verdict",
)
_VERDICT_ORDER = {"regression": 0, "improvement": 1, "unchanged": 2}
_STATUS = {"pass": "PASS", "fail": "FAIL", "incomplete": "INCOMPLETE", "no-baseline": "NO BASELINE"}


def figure_text(name: str, value: float) -> str:
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
        figure_text(c.metric, c.baseline),
        figure_text(c.metric, c.now),
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


# The terminal shows only what moved, was lost or could not be compared, with short cell names under their workload
TERMINAL_HEADER = ("cell", "verdict", "metric", "baseline", "now", "change", "95% CI", "threshold", "why")
_TERMINAL_ORDER = {"REGRESSION": 0, "LOST (regression)": 1, "improvement": 2, "not compared": 3}


def _terminal_row(c: MetricComparison) -> tuple[str, ...]:
    """The full table's row without min detectable and processes (both in the Markdown page), the verdict second."""
    cell, metric_text, baseline, now, change, ci, threshold, _mdr, _processes, significance, verdict = _row(c)
    return (cell, verdict, metric_text, baseline, now, change, ci, threshold, significance)


def _named(keys: Sequence[str]) -> str:
    """Cell keys as short names, each workload named once: ``n10/bs1, n10/bs8 (workload fixed256-...-s0)``."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        workload, short = split_cell_key(key)
        groups.setdefault(workload, []).append(short)
    return "; ".join(", ".join(names) + (f" (workload {w})" if w else "") for w, names in groups.items())


def terminal_tables(report: GateReport) -> list[Table]:
    """One row per comparison that moved and per cell lost or new (not in the baseline), grouped by workload: one
    table each, titled with the workload, its cells by short name (``n10/bs16``, ``n10/bs16+token-sorted``)."""
    rows: dict[str, list[tuple[tuple[Any, ...], tuple[str, ...]]]] = {}

    def add(key: str, row: tuple[str, ...]) -> None:
        workload, short = split_cell_key(key)
        rows.setdefault(workload, []).append(((_TERMINAL_ORDER[row[1]], cell_sort_key(key), row[2]), (short, *row[1:])))

    for c in report.comparisons:
        if c.verdict != "unchanged":
            add(c.cell, _terminal_row(c))
    for lost in report.lost:
        add(
            lost.cell,
            (lost.cell, "LOST (regression)", "-", "measured", lost.status.upper(), "-", "-", "-", lost.reason),
        )
    if report.status != "no-baseline":  # without a baseline every cell is new: counted, not listed
        for key in report.new_cells:
            add(key, (key, "not compared", "-", "-", "measured", "-", "-", "-", "not in the baseline"))
    tables = []
    for workload, group in rows.items():
        title = f"workload {workload} (cells: n<pairs>/bs<batch size>)" if workload else "OOM boundaries"
        body = [row for _, row in sorted(group)]
        tables.append(Table(TERMINAL_HEADER, body, title, left_columns=3, trailing_text=1))
    return tables


def _detectable(comparisons: Sequence[MetricComparison]) -> str:
    """Per timed metric, the range of the cells' minimum detectable regressions: what this run could see, in one
    line (each cell's figure is in the Markdown page)."""
    by_metric: dict[str, list[float]] = {}
    for c in comparisons:
        if c.mdr is not None and c.p_value is not None:
            by_metric.setdefault(c.metric, []).append(c.mdr * 100)
    ranges = {m: (min(v), max(v)) for m, v in by_metric.items()}
    return ", ".join(
        f"{m} {lo:.1f}%" if f"{lo:.1f}" == f"{hi:.1f}" else f"{m} {lo:.1f}-{hi:.1f}%" for m, (lo, hi) in ranges.items()
    )


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _counts(report: GateReport) -> list[str]:
    """What the terminal counts instead of listing: cells unchanged, cells planned but not compared."""
    moved = {c.cell for c in report.comparisons if c.verdict != "unchanged"}
    unchanged = {c.cell for c in report.comparisons} - moved
    cells = sum(1 for key in unchanged if split_cell_key(key)[0])
    boundaries = len(unchanged) - cells
    out = []
    if cells or (not boundaries and report.comparisons):
        out.append(f"{_count(cells, 'cell')} unchanged (within thresholds, or not significant)")
    if boundaries:
        out.append(f"{_count(boundaries, 'OOM boundary', 'OOM boundaries')} unchanged")
    detectable = _detectable(report.comparisons)
    if detectable:
        out.append(f"minimum detectable regression (caught 95% of the time): {detectable}")
    if report.status == "no-baseline":
        out.append(f"{_count(len(report.new_cells), 'cell')} measured, none compared: no baseline")
        return out
    accounted = {c.cell for c in report.comparisons} | {c.cell for c in report.lost} | set(report.new_cells)
    skipped = [key for key in report.planned if key not in accounted]
    if skipped:
        why = "throttled, another machine, or not run now and not in the baseline"
        out.append(f"{_count(len(skipped), 'planned cell')} not compared ({why}): {_named(skipped)}")
    return out


def format_gate(report: GateReport) -> list[str]:
    """Terminal lines: the verdict first, the warnings, one row per cell that moved, was lost or is new, the count
    of unchanged cells, and the baseline's cells this run did not plan. Every comparison is in the Markdown page and
    the verdict JSON."""
    lines = [f"regression gate: {report.status.upper()}: {report.message}", f"baseline: {report.baseline_path}"]
    if report.drift:
        lines.append(f"drift: {report.drift}")
    lines += [f"WARNING: {w} (figures may move for this reason alone)" for w in report.warnings]
    for table in terminal_tables(report):
        lines += ["", *table.text()]
    lines += ["", *_counts(report)] if report.comparisons or report.new_cells or report.planned else []
    if report.vanished:
        lines.append(f"in the baseline, not planned in this run: {_named(report.vanished)}")
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
        f"- model key: `{report.model_key}`",
        f"- baseline: `{report.baseline_path}`",
    ]
    if report.drift:
        out.append(f"- drift: {report.drift}")
    out += [f"- **warning:** {w}" for w in report.warnings]
    out += [f"- **{label}:** {text}" for label, text in _cell_lists(report)]
    if report.comparisons:
        out += ["", *gate_table(report).markdown(bold={"REGRESSION"})]
    return "\n".join(out) + "\n"
