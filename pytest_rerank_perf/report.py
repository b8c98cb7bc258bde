"""Terminal tables: one per number of pairs, best batch size marked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .compare import GateReport, MetricComparison
from .measure import CellResult

_HEADER = ("batch", "pairs/s", "tokens/s", "p50 ms", "p99 ms", "peak VRAM", "MFU", "padding", "rounds")


def best_batch_sizes(results: Iterable[CellResult]) -> dict[int, int]:
    """Per num_pairs, the batch size with the highest measured throughput (ties: the smaller batch)."""
    best: dict[int, CellResult] = {}
    for r in results:
        if r.status != "ok" or r.pairs_per_s is None:
            continue
        cur = best.get(r.cell.num_pairs)
        if cur is None or (r.pairs_per_s, -r.cell.batch_size) > (cur.pairs_per_s or 0.0, -cur.cell.batch_size):
            best[r.cell.num_pairs] = r
    return {n: r.cell.batch_size for n, r in best.items()}


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def _row(r: CellResult, best: bool) -> tuple[str, ...]:
    batch = f"{r.cell.batch_size}{' *' if best else ''}"
    if r.status != "ok":
        label = "OOM" if r.status == "oom" else "skipped"
        return (batch, label, "", "", "", "", "", "", r.reason)
    if r.latency_call is None or r.pairs_per_s is None or r.tokens_per_s is None:
        raise ValueError(f"cell {r.cell.id} is ok but has no throughput")
    pad = 1 - r.real_tokens / r.padded_tokens if r.padded_tokens else 0.0
    return (
        batch,
        f"{r.pairs_per_s:,.1f}",
        f"{r.tokens_per_s:,.0f}",
        f"{r.latency_call.median * 1e3:.2f}",
        f"{r.latency_call.p99 * 1e3:.2f}",
        _gib(r.memory.peak_allocated_bytes if r.memory else None),
        "-" if r.mfu is None else f"{r.mfu * 100:.1f}%",
        f"{pad * 100:.0f}%",
        str(r.rounds),
    )


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for k, row in enumerate(rows):
        out.append(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def format_matrix(results: Sequence[CellResult]) -> list[str]:
    """Lines of the summary: one table per (workload, num_pairs), rows by batch size."""
    best = best_batch_sizes(results)
    lines: list[str] = []
    for n in sorted({r.cell.num_pairs for r in results}):
        cells = sorted((r for r in results if r.cell.num_pairs == n), key=lambda r: r.cell.batch_size)
        workloads = sorted({r.workload_id for r in cells})
        lines.append(f"num_pairs={n}  workload={', '.join(workloads)}  (* = best batch size)")
        lines += _table([_HEADER, *(_row(r, best.get(n) == r.cell.batch_size and r.status == "ok") for r in cells)])
        lines.append("")
    return lines


# --- the regression gate ------------------------------------------------------------------------------------------

_GATE_HEADER = ("cell", "metric", "baseline", "now", "change", "95% CI", "threshold", "significance", "verdict")
_VERDICT_ORDER = {"regression": 0, "improvement": 1, "unchanged": 2}


def _figure(metric: str, value: float) -> str:
    if metric == "throughput":
        return f"{value:,.1f} pairs/s"
    if metric == "latency":
        return f"{value * 1e3:.3f} ms"
    if metric == "max_batch":
        return f"{value:.0f} pairs"
    return f"{value / 2**20:,.1f} MiB"


def _gate_row(c: MetricComparison) -> tuple[str, ...]:
    ci = "-" if c.ci is None else f"{c.ci[0] * 100:+.1f}..{c.ci[1] * 100:+.1f}%"
    significance = "deterministic" if c.p_value is None else f"p={c.p_value:.2g}"
    verdict = c.verdict.upper() if c.verdict == "regression" else c.verdict
    return (c.cell, c.metric, _figure(c.metric, c.baseline), _figure(c.metric, c.now), f"{c.change * 100:+.1f}%", ci,
            f"{c.threshold * 100:.0f}%", significance, verdict)  # fmt: skip


def _gate_rows(report: GateReport) -> list[tuple[str, ...]]:
    ordered = sorted(report.comparisons, key=lambda c: (_VERDICT_ORDER[c.verdict], c.cell, c.metric))
    return [_gate_row(c) for c in ordered]


def format_gate(report: GateReport) -> list[str]:
    """Terminal lines: the verdict, the warnings, and the comparison table (regressions first)."""
    lines = [f"regression gate: {report.status.upper()}: {report.message}", f"baseline: {report.baseline_path}"]
    lines += [f"WARNING: {w} (figures may move for this reason alone)" for w in report.warnings]
    if report.unmatched:
        lines.append(f"not in the baseline (not compared): {', '.join(report.unmatched)}")
    if report.comparisons:
        lines += ["", *_table([_GATE_HEADER, *_gate_rows(report)])]
    if report.improvements:
        lines.append(f"{len(report.improvements)} improvement(s): refresh the baseline with --rerank-force.")
    return lines


def gate_markdown(report: GateReport, profile_summary: str) -> str:
    """The same verdict as a Markdown page, e.g. for ``$GITHUB_STEP_SUMMARY``."""
    icon = {"pass": "PASS", "fail": "FAIL", "no-baseline": "NO BASELINE"}[report.status]
    out = [
        f"## rerank-perf regression gate: {icon}",
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
        out += ["", "| " + " | ".join(_GATE_HEADER) + " |", "|" + "---|" * len(_GATE_HEADER)]
        for row in _gate_rows(report):
            cells = [f"**{v}**" if v == "REGRESSION" else v for v in row]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
