"""Tables of a run, for the terminal and for Markdown: the matrix (best batch size marked) and the gate.

They read the JSON form of a cell (``CellResult.extra_info()``), so a live run and a saved report render the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .compare import GateReport, MetricComparison

Cell = Mapping[str, Any]  # one cell as the JSON holds it
_HEADER = ("batch", "pairs/s", "tokens/s", "p50 ms", "p99 ms", "peak VRAM", "MFU", "padding", "rounds")


def best_batch_sizes(cells: Iterable[Cell]) -> dict[int, int]:
    """Per num_pairs, the batch size with the highest measured throughput (ties: the smaller batch)."""
    best: dict[int, Cell] = {}
    for c in cells:
        if c["status"] != "ok" or c.get("pairs_per_s") is None:
            continue
        cur = best.get(c["num_pairs"])
        if cur is None or (c["pairs_per_s"], -c["batch_size"]) > (cur["pairs_per_s"], -cur["batch_size"]):
            best[c["num_pairs"]] = c
    return {n: c["batch_size"] for n, c in best.items()}


def gib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def _row(c: Cell, best: bool) -> tuple[str, ...]:
    batch = f"{c['batch_size']}{' *' if best else ''}"
    if c["status"] != "ok":
        label = "OOM" if c["status"] == "oom" else "skipped"
        return (batch, label, "", "", "", "", "", "", c.get("reason") or "")
    call = (c.get("latency_s") or {}).get("call")
    if call is None or c.get("pairs_per_s") is None or c.get("tokens_per_s") is None:
        raise ValueError(f"cell n{c['num_pairs']}-bs{c['batch_size']} is ok but has no throughput")
    pad = 1 - c["real_tokens"] / c["padded_tokens"] if c.get("padded_tokens") else 0.0
    return (
        batch,
        f"{c['pairs_per_s']:,.1f}",
        f"{c['tokens_per_s']:,.0f}",
        f"{call['median'] * 1e3:.2f}",
        f"{call['p99'] * 1e3:.2f}",
        gib(c.get("peak_vram_allocated_bytes")),
        "-" if c.get("mfu") is None else f"{c['mfu'] * 100:.1f}%",
        f"{pad * 100:.0f}%",
        str(c["rounds"]),
    )


def text_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
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


def markdown_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    header, *body = rows
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in body)]


def matrix_tables(cells: Sequence[Cell]) -> list[tuple[str, list[tuple[str, ...]]]]:
    """(title, rows with header) per num_pairs, rows by batch size."""
    best = best_batch_sizes(cells)
    out = []
    for n in sorted({c["num_pairs"] for c in cells}):
        group = sorted((c for c in cells if c["num_pairs"] == n), key=lambda c: c["batch_size"])
        workloads = sorted({c["workload_id"] for c in group})
        title = f"num_pairs={n}  workload={', '.join(workloads)}  (* = best batch size)"
        rows = [_row(c, best.get(n) == c["batch_size"] and c["status"] == "ok") for c in group]
        out.append((title, [_HEADER, *rows]))
    return out


def format_matrix(cells: Sequence[Cell]) -> list[str]:
    """Lines of the terminal summary: one table per (workload, num_pairs)."""
    lines: list[str] = []
    for title, rows in matrix_tables(cells):
        lines += [title, *text_table(rows), ""]
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
        lines += ["", *text_table([_GATE_HEADER, *_gate_rows(report)])]
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
