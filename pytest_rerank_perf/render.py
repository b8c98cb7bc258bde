"""The report folder: ``report.json`` (everything a run measured), ``index.md`` and PNG plots.

The plugin builds the report data once per run and writes the folder through ``write_report``; ``rerank-perf
render`` reads the JSON back and calls the same function, so a saved run re-renders identically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .baseline import write_atomic
from .compare import GateReport
from .errors import RerankPerfError
from .plots import Plot, subject, write_plots
from .report import best_batch_sizes, gate_markdown, markdown_table, matrix_tables
from .scenarios import Scenario, recommend

REPORT_VERSION = 1
REPORT_FILE = "report.json"
_REQUIRED = ("report_version", "profile", "model", "cells")


class ReportError(RerankPerfError):
    """A saved report that cannot be read."""


def parse_report(data: Any, source: Path) -> dict[str, Any]:
    """A report dict from ``report.json`` or from pytest-benchmark's JSON (its ``rerank`` section)."""
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
            f"{source}: report version {data['report_version']!r}; this rerank-perf reads version {REPORT_VERSION}"
        )
    return data


def load_report(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file; a run writes reports/{REPORT_FILE}") from None
    try:
        return parse_report(json.loads(text), path)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def _merged_gate(gates: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    if not gates:
        return None
    statuses = {g["status"] for g in gates}
    status = "fail" if "fail" in statuses else "pass" if "pass" in statuses else "no-baseline"
    comparisons = [c for g in gates for c in g["comparisons"]]
    regressions = sum(c["verdict"] == "regression" for c in comparisons)
    return {
        "status": status,
        "baseline_path": ", ".join(sorted({g["baseline_path"] for g in gates})),
        "model_key": gates[0]["model_key"],
        "message": f"{len(gates)} workers: " + " | ".join(g["message"] for g in gates),
        "regressions": regressions,
        "improvements": sum(c["verdict"] == "improvement" for c in comparisons),
        "warnings": sorted({w for g in gates for w in g["warnings"]}),
        "unmatched_cells": sorted({u for g in gates for u in g["unmatched_cells"]}),
        "comparisons": comparisons,
    }


def merge_reports(reports: Sequence[Mapping[str, Any]], scenarios: Sequence[Scenario]) -> dict[str, Any]:
    """One report from the reports of several xdist workers (one GPU each): cells side by side, tagged by device.

    Sections and gates stay per worker in substance (each worker compared its own cells with the baseline of its
    own GPU model); the merged gate fails if any worker's did.
    """
    reports = sorted(reports, key=lambda r: str(r.get("device")))
    first = reports[0]
    cells = [c for r in reports for c in r["cells"]]
    load = {k: v for r in reports for k, v in (r.get("load") or {}).items()}
    booms = {k: v for r in reports for k, v in (r.get("oom_boundaries") or {}).items()}
    deviations = [r["invariance_max_logit_deviation"] for r in reports if r.get("invariance_max_logit_deviation")]
    sections = [r["section"] for r in reports if r.get("section")]
    section = None
    if sections:
        section = {**sections[0], "cells": {k: v for s in sections for k, v in s["cells"].items()}}
    max_length = (first.get("model") or {}).get("max_length")
    return {
        **first,
        "device": ", ".join(str(r.get("device")) for r in reports),
        "devices": [str(r.get("device")) for r in reports],
        "profile_summary": " | ".join(sorted({r["profile_summary"] for r in reports})),
        "cells": cells,
        "best_batch_size": {str(n): b for n, b in best_batch_sizes(cells).items()},
        "harness_overhead": next((r["harness_overhead"] for r in reports if r.get("harness_overhead")), None),
        "oom_boundaries": booms,
        "invariance_max_logit_deviation": max(deviations, default=None),
        "load": load,
        "scenarios": [s.to_dict() for s in recommend(scenarios, cells, max_length, load)],
        "gate": _merged_gate([r["gate"] for r in reports if r.get("gate")]),
        "gate_enforced": any(r.get("gate_enforced") for r in reports),
        "baseline_recorded": ", ".join(sorted({r["baseline_recorded"] for r in reports if r.get("baseline_recorded")}))
        or None,
        "failure": " | ".join(r["failure"] for r in reports if r.get("failure")) or None,
        "section": section,
    }


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1e3:.1f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _header(data: Mapping[str, Any]) -> list[str]:
    model = data["model"] or {}
    lines = [
        "# rerank-perf report",
        "",
        f"- **subject:** {subject(data)}",
        f"- **profile:** {data.get('profile_summary', '-')}",
        f"- **model id:** `{model.get('key', '-')}` ({model.get('parameters', 0):,} parameters)",
        f"- **device:** {data.get('device', '-')}; created {data.get('created', '-')}",
    ]
    if not (data["profile"] or {}).get("gpu"):
        lines.append(
            "- **CPU FALLBACK:** no GPU. These figures come from the tiny twin on the CPU; they show the harness "
            "works and say nothing about GPU performance."
        )
    return lines


def _scenarios(recs: Sequence[Mapping[str, Any]]) -> list[str]:
    if not recs:
        return []
    rows: list[tuple[str, ...]] = [("scenario", "recommendation", "pairs/s", "p99", "margin", "notes")]
    for r in recs:
        if r["batch_size"] is None:
            choice = "**none fits**"
        elif r.get("server"):
            choice = f"`{r['server']}` (max_batch {r['batch_size']}), {r['max_rate']:.1f} req/s"
        else:
            choice = f"batch_size **{r['batch_size']}** at max_length {r['max_length']}"
        judged = ", ".join(str(n) for n in r.get("judged_on") or [])
        notes = list(r.get("notes") or [])
        if judged and not any("judged on" in n for n in notes):
            notes.append(f"judged on {judged} pairs per call")
        rows.append((f"**{r['scenario']}**: {r['description']}", choice, _rate(r.get("pairs_per_s")),
                     _ms(r.get("p99_s")), r.get("margin") or "-", "; ".join(notes) or "-"))  # fmt: skip
    return ["", "## Scenario recommendations", "", *markdown_table(rows)]


def _load(name: str, load: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    target = load["p99_target_s"]
    out = ["", f"## Dynamic batcher under load: scenario `{name}`", "",
           f"{load['pairs_per_request']} pairs per request, Poisson arrivals (open loop); latency from scheduled "
           f"arrival; p99 target {_ms(target)}. `{load['reference']}` is per-request `predict` with a fixed batch, "
           "one request at a time.", ""]  # fmt: skip
    summary: list[tuple[str, ...]] = [("server", f"max rate with p99 <= {_ms(target)}", "pairs/s there", "p99 there")]
    detail: list[tuple[str, ...]] = [("server", "offered req/s", "issued req/s", "p50", "p95", "p99", "pairs/s",
                                      "meets")]  # fmt: skip
    for server, result in load["servers"].items():
        points = sorted(result["points"], key=lambda p: p["target_rate"])
        best = next((p for p in points if p["target_rate"] == result.get("max_rate")), None)
        if best is None:
            summary.append((f"`{server}`", "none", "-", "-"))
        else:
            summary.append((f"`{server}`", f"{_rate(best['target_rate'])} req/s", _rate(best["pairs_per_s"]),
                            _ms(best["latency"]["p99"])))  # fmt: skip
        for p in points:
            meets = p["errors"] == 0 and p["latency"]["p99"] <= target
            detail.append((f"`{server}`", _rate(p["target_rate"]), _rate(p["arrival_rate"]), _ms(p["latency"]["p50"]),
                           _ms(p["latency"]["p95"]), _ms(p["latency"]["p99"]), _rate(p["pairs_per_s"]),
                           "yes" if meets else "no"))  # fmt: skip
    out += markdown_table(summary)
    if f"load-{name}.png" in plots:
        out += ["", f"![latency vs load](load-{name}.png)"]
    out += ["", "<details><summary>p99 vs offered rate, every point</summary>", "", *markdown_table(detail), "",
            "</details>"]  # fmt: skip
    sweep = load.get("closed_loop") or []
    if sweep:
        rows: list[tuple[str, ...]] = [("concurrent callers", "req/s", "pairs/s", "p50", "p99")]
        rows += [(str(p["concurrency"]), _rate(p["throughput_rps"]), _rate(p["pairs_per_s"]), _ms(p["latency"]["p50"]),
                  _ms(p["latency"]["p99"])) for p in sweep]  # fmt: skip
        out += ["", f"Closed loop, `{sweep[0]['server']}`:", "", *markdown_table(rows)]
        if f"concurrency-{name}.png" in plots:
            out += ["", f"![concurrency sweep](concurrency-{name}.png)"]
    return out


def report_markdown(data: Mapping[str, Any], plots: Sequence[Plot]) -> str:
    files = {p.filename: p.title for p in plots}
    out = _header(data)
    if not plots and (data.get("cells") or data.get("load")):
        out.append("- **no plots:** matplotlib is not installed (`pip install matplotlib`, then `rerank-perf render`)")
    out += _scenarios(data.get("scenarios") or [])
    cells = data.get("cells") or []
    if cells:
        out += ["", "## Throughput matrix", ""]
        out += [f"![{t}]({f})" for f, t in files.items() if f in ("throughput.png", "vram.png")]
        if "vram.png" not in files:
            out += ["", "_No VRAM plot: peak VRAM is a GPU figure._"]
        for title, table in matrix_tables(cells):
            out += ["", f"**{title}**", "", *markdown_table(table)]
    booms = data.get("oom_boundaries") or {}
    if booms:
        rows: list[tuple[str, ...]] = [("max_length", "largest batch that fits", "smallest that ran out")]
        rows += [(k, str(b["max_batch"]), str(b.get("first_oom") or "none up to the search limit"))
                 for k, b in sorted(booms.items(), key=lambda kv: int(kv[0]))]  # fmt: skip
        out += ["", "## Largest batch before out-of-memory", "", *markdown_table(rows)]
    for name, load in sorted((data.get("load") or {}).items()):
        out += _load(name, load, files)
    if data.get("invariance_max_logit_deviation") is not None:
        out += ["", "## Score invariance", "",
                f"Max logit deviation across batch sizes, order and padding: "
                f"{data['invariance_max_logit_deviation']:.3g} ({data['model'].get('dtype')})."]  # fmt: skip
    if data.get("gate"):
        out += ["", gate_markdown(GateReport.from_dict(data["gate"]), data.get("profile_summary", "")).rstrip()]
        if "baseline.png" in files:
            out += ["", "![baseline comparison](baseline.png)"]
    if data.get("baseline_recorded"):
        out += ["", f"Baseline recorded: `{data['baseline_recorded']}`."]
    return "\n".join(out) + "\n"


def write_report(data: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write report.json, the plots and index.md into ``out_dir``; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / REPORT_FILE]
    write_atomic(written[0], json.dumps(data, indent=1, default=str) + "\n")
    plots = write_plots(data, out_dir)
    written += [out_dir / p.filename for p in plots]
    write_atomic(out_dir / "index.md", report_markdown(data, plots))
    return [*written, out_dir / "index.md"]
