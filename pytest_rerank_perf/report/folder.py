"""The report folder: ``report.json``, the PNG plots and ``index.md``, written and read back.

``rerank-perf render`` reads ``report.json`` and calls the same ``write_report``, so a saved run re-renders
identically.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..fsutil import write_atomic
from .markdown import report_markdown
from .plots import write_plots
from .run_report import REPORT_FILE, ReportError, RunReport


def load_report(path: Path) -> RunReport:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file; a run writes reports/{REPORT_FILE}") from None
    try:
        return RunReport.from_dict(json.loads(text), path)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def write_report(report: RunReport, out_dir: Path) -> list[Path]:
    """Write report.json, the plots and index.md into ``out_dir``; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    written = [out_dir / REPORT_FILE]
    write_atomic(written[0], json.dumps(data, indent=1, default=str) + "\n")
    plots = write_plots(data, out_dir)
    written += [out_dir / p.filename for p in plots]
    write_atomic(out_dir / "index.md", report_markdown(report, plots))
    return [*written, out_dir / "index.md"]
