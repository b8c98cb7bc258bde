"""``rerank-perf``: re-render a saved report, or diff two saved runs with the gate's statistics.

    rerank-perf render reports/report.json [--out DIR]
    rerank-perf diff OLD.json NEW.json [--threshold [PATTERN:]METRIC=PCT ...] [--alpha 0.01] [--markdown FILE]

Both take ``report.json`` or pytest-benchmark's JSON from a run with the plugin active. ``diff`` exits 1 when NEW
has a regression against OLD (significant and beyond threshold, as the gate judges) or cells measured on a
throttled GPU that could not be compared, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import RerankPerfError
from .fsutil import write_atomic
from .gate.compare import GateReport, gate, throttled_cells
from .gate.thresholds import DEFAULT_ALPHA, GateSettings, parse_alpha, parse_threshold_rules
from .gate.verdict import format_gate, gate_markdown
from .measurements.matrix_result import MatrixResult
from .report.folder import load_report, write_report
from .report.run_report import RunReport
from .store import ModelBaseline


def _render(args: argparse.Namespace) -> int:
    source = Path(args.report)
    report = load_report(source)
    out = Path(args.out) if args.out else source.parent
    for path in write_report(report, out):
        print(f"wrote {path}")
    return 0


def _section_of(path: Path, report: RunReport) -> ModelBaseline:
    if report.section is None:
        raise RerankPerfError(f"{path}: the report has no measured cells to compare (no `section`)")
    return report.section


def diff_reports(
    old_path: Path, new_path: Path, rules: Sequence[str] = (), alpha: str = str(DEFAULT_ALPHA)
) -> GateReport:
    old, new = load_report(old_path), load_report(new_path)
    base, now = _section_of(old_path, old), _section_of(new_path, new)
    old_key, new_key = old.model.get("key"), new.model.get("key")
    if old_key != new_key:
        raise RerankPerfError(
            f"the runs measured different models ({old_key} vs {new_key}): the model identity (weights, dtype, "
            "max_length) must match, or the comparison says nothing"
        )
    kind = "cuda" if new.profile.get("gpu") else "cpu"
    settings = GateSettings.for_device(kind, parse_threshold_rules(rules), parse_alpha(alpha, "--alpha"))
    cells = [c for r in (old, new) if (m := r.result(MatrixResult)) for c in m.cells]
    throttled = throttled_cells(cells)  # either side: a throttled reference is no reference
    return gate(base, now, settings, str(old_path), str(new_key), throttled)


def _diff(args: argparse.Namespace) -> int:
    old_path, new_path = Path(args.old), Path(args.new)
    report = diff_reports(old_path, new_path, args.threshold, args.alpha)
    old_profile = load_report(old_path).profile.get("profile_id")
    new_profile = load_report(new_path).profile.get("profile_id")
    if old_profile != new_profile:
        print(f"NOTE: different hardware profiles ({old_profile} vs {new_profile}): differences are expected")
    for line in format_gate(report):
        print(line)
    if args.markdown:
        write_atomic(Path(args.markdown), gate_markdown(report, f"{old_profile} -> {new_profile}"))
    return 1 if report.status in ("fail", "incomplete") else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rerank-perf", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="re-render a report folder (index.md and plots) from saved JSON")
    render.add_argument("report", help="reports/report.json or a pytest-benchmark JSON")
    render.add_argument("--out", help="folder to write (default: the report's own folder)")
    render.set_defaults(run=_render)
    diff = sub.add_parser("diff", help="compare two saved runs cell by cell, as the regression gate does")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--threshold", action="append", default=[], metavar="[PATTERN:]METRIC=PCT")
    diff.add_argument("--alpha", default=str(DEFAULT_ALPHA), help="significance level (default 0.01)")
    diff.add_argument("--markdown", help="also write the comparison as Markdown to this file")
    diff.set_defaults(run=_diff)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except RerankPerfError as exc:
        print(f"rerank-perf: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
