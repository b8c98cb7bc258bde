"""The report folder: ``report.json``, the PNG plots and ``index.md``, written and read back.

``rerank-perf render`` reads ``report.json`` and calls the same ``write_report``, so a saved run re-renders
identically. Reading is strict: every way a file can be wrong is a ``ReportError`` naming the file and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..fsutil import ReadFixes, read_text, write_atomic
from .markdown import report_markdown
from .plots import write_plots
from .run_report import REPORT_FILE, ReportError, RunReport

_PASS = f"pass a rerank-perf reports/{REPORT_FILE} or a pytest-benchmark JSON written with the plugin active"


def _read_text(path: Path) -> str:
    fixes = ReadFixes(
        missing=f"a run writes reports/{REPORT_FILE}",
        directory=f"pass the report file inside it, e.g. {path / REPORT_FILE}",
        undecodable=f"not a UTF-8 text file (a PNG or other binary?); {_PASS}",
        unreadable=f"check the path and {_PASS}",
    )
    return read_text(path, lambda: path.read_text(encoding="utf-8"), ReportError, fixes)


def read_json(path: Path) -> Any:
    """The parsed JSON of ``path``."""
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); {_PASS}") from None
    except (ValueError, RecursionError) as exc:  # an integer too long to convert, nesting too deep
        raise ReportError(f"{path}: JSON that cannot be loaded ({exc}); {_PASS}") from None


def load_report(path: Path) -> RunReport:
    return RunReport.from_dict(read_json(path), path)


def is_benchmark_json(data: Any, marker: str = "rerank") -> bool:
    """pytest-benchmark's JSON: with ``marker="rerank"`` one that carries a rerank-perf report."""
    return isinstance(data, dict) and "benchmarks" in data and marker in data


def is_benchmark_storage(folder: Path) -> bool:
    """A pytest-benchmark storage folder (or its root): ``pytest-benchmark list`` reads every JSON file there.
    Storage holds auto-saved runs named ``NNNN_*.json``; a ``--benchmark-json`` file beside a report is no storage."""
    if ".benchmarks" in folder.resolve().parts:
        return True
    for path in [*folder.glob("[0-9][0-9][0-9][0-9]_*.json"), *folder.glob("*/[0-9][0-9][0-9][0-9]_*.json")]:
        try:
            if is_benchmark_json(json.loads(path.read_text(encoding="utf-8")), "machine_info"):
                return True
        except (OSError, ValueError):  # unreadable or not JSON: not pytest-benchmark's
            continue
    return False


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
