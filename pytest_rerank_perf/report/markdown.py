"""``index.md``: the header, scenario recommendations, each procedure's section, and the gate's verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..gate.verdict import gate_markdown
from ..measurements import PROCEDURES
from ..measurements.load import LoadResults
from ..tables import Table, ms, rate
from .figure import Plot, subject
from .run_report import RunReport


def _header(report: RunReport) -> list[str]:
    model = report.model
    lines = [
        "# rerank-perf report",
        "",
        f"- **model:** {subject(report.to_dict())}",
        f"- **profile:** {report.profile_summary}",
        f"- **model key:** `{model.get('key', '-')}` ({model.get('parameters', 0):,} parameters, "
        f"architecture {model.get('architecture', '?')})",
        f"- **device:** {report.device}; created {report.created}",
    ]
    lines += [f"- **{warning}**" for warning in report.data_warnings()]
    if not report.profile.get("gpu"):
        lines.append(
            "- **CPU FALLBACK:** no GPU. These figures come from the tiny twin on the CPU; they show the harness "
            "works and say nothing about GPU performance."
        )
    return lines


def _scenario_row(r: Mapping[str, Any]) -> tuple[str, ...]:
    if r["batch_size"] is None:
        choice = "**none fits**"
    elif r.get("server"):
        choice = f"`{r['server']}` (max_batch {r['batch_size']}), {r['max_rate']:.1f} req/s"
    else:
        variant = r.get("variant") or "predict"
        choice = f"`{variant}`, batch_size **{r['batch_size']}** at max_length {r['max_length']}"
    judged = ", ".join(str(n) for n in r.get("judged_on") or [])
    notes = list(r.get("notes") or [])
    if judged and not any("judged on" in n for n in notes):
        notes.append(f"judged on {judged} pairs per call")
    scenario = f"**{r['scenario']}**: {r['description']}"
    margin = r.get("margin") or "-"
    return (scenario, choice, rate(r.get("pairs_per_s")), ms(r.get("p99_s")), margin, "; ".join(notes) or "-")


def _scenarios(recs: Sequence[Mapping[str, Any]]) -> list[str]:
    if not recs:
        return []
    table = Table(("scenario", "recommendation", "pairs/s", "p99", "margin", "notes"), [_scenario_row(r) for r in recs])
    return ["", "## Scenario recommendations", "", *table.markdown()]


def report_markdown(report: RunReport, plots: Sequence[Plot]) -> str:
    files = {p.filename: p.title for p in plots}
    out = _header(report)
    if not plots and (report.cells or report.result(LoadResults)):
        out.append("- **no plots:** matplotlib is not installed (`pip install matplotlib`, then `rerank-perf render`)")
    out += _scenarios(report.scenarios)
    for kind in PROCEDURES:
        result = report.result(kind)
        if result is not None:
            out += result.markdown(files)
    if report.gate:
        out += ["", gate_markdown(report.gate, report.profile_summary).rstrip()]
        if "baseline.png" in files:
            out += ["", "![baseline comparison](baseline.png)"]
    if report.baseline_recorded:
        out += ["", f"Baseline recorded: `{report.baseline_recorded}`."]
    return "\n".join(out) + "\n"
