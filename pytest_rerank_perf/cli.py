"""``rerank-perf``: re-render a saved report, or diff two saved runs with the gate's statistics.

    rerank-perf render reports/report.json [--out DIR]
    rerank-perf diff OLD.json NEW.json [--threshold [PATTERN:]METRIC=PCT ...] [--alpha 0.01] [--markdown FILE]
    rerank-perf profiles [baselines/] [--markdown] [--update docs/hardware.md]

``render`` and ``diff`` take ``report.json`` or pytest-benchmark's JSON from a run with the plugin active. ``diff``
exits 1 when NEW has a regression against OLD (significant and beyond threshold, as the gate judges) or cells
measured on a throttled GPU that could not be compared. ``profiles`` lists the committed hardware profiles, one row
per profile and model. Every subcommand exits 2 on bad input: one line on stderr naming the problem and the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import RerankPerfError, UsageError
from .fsutil import write_atomic
from .gate.judge import gate, planned_cells, throttled_cells
from .gate.outcome import GateReport
from .gate.thresholds import DEFAULT_ALPHA, GateSettings, parse_alpha, parse_threshold_rules
from .gate.verdict import format_gate, gate_markdown
from .report.folder import is_benchmark_json, is_benchmark_storage, load_report, read_json, write_report
from .report.profiles import profiles_table, read_profiles, with_table
from .report.run_report import REPORT_FILE, RunReport
from .store import ModelBaseline, section_from_cells

_BAD_INPUT = "2  bad input: a missing, unreadable or malformed file, or a bad option (one line on stderr)"
EXIT_CODES = f"exit codes:\n  0  pass\n  1  regression, or an incomplete comparison\n  {_BAD_INPUT}"
RENDER_EXIT_CODES = f"exit codes:\n  0  report written\n  {_BAD_INPUT}"
PROFILES_EXIT_CODES = f"exit codes:\n  0  listed\n  {_BAD_INPUT}"


@contextlib.contextmanager
def _writing(path: Path, what: str) -> Iterator[None]:
    """An OSError while writing is the user's path (a file where a folder goes, no permission), not a bug."""
    try:
        yield
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{what} {path}: a file stands where a folder must go; pass another path") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write there ({exc.strerror or exc}); pass a writable path") from None


def _render_folder(source: Path, data: Any, out: str | None) -> Path:
    """Where ``render`` writes: never into pytest-benchmark's storage, where report.json breaks its ``list``."""
    if out is None and is_benchmark_json(data):
        raise UsageError(
            f"{source}: a pytest-benchmark JSON; rendering beside it would put {REPORT_FILE} into pytest-benchmark's "
            "storage: pass --out DIR, e.g. --out reports"
        )
    folder = Path(out) if out is not None else source.parent
    if is_benchmark_storage(folder):
        raise UsageError(
            f"{folder}: a pytest-benchmark storage folder; {REPORT_FILE} there breaks `pytest-benchmark list`: "
            "pass --out DIR outside it, e.g. --out reports"
        )
    return folder


def _render(args: argparse.Namespace) -> int:
    source = Path(args.report)
    data = read_json(source)
    report = RunReport.from_dict(data, source)
    out = _render_folder(source, data, args.out)
    with _writing(out, "--out"):
        written = write_report(report, out)
    for path in written:
        print(f"wrote {path}")
    return 0


def _section_of(path: Path, report: RunReport) -> ModelBaseline:
    if report.section is None:
        raise RerankPerfError(
            f"{path}: the report has no measured cells to compare (no `section`); pass the report.json of a run that "
            "measured the matrix (benchmarks/test_throughput_matrix.py)"
        )
    return report.section


def diff_reports(
    old: RunReport, new: RunReport, old_path: Path, new_path: Path, rules: Sequence[str], alpha: str
) -> GateReport:
    base = _section_of(old_path, old)
    if not new.cells:
        _section_of(new_path, new)  # neither cells nor a section: nothing to judge
    # a new run whose every planned cell ran out of memory has no section, and is judged all the same
    now = new.section or section_from_cells([], new.model, new.profile)
    old_key, new_key = old.model.get("key"), new.model.get("key")
    if old_key != new_key:
        raise RerankPerfError(
            f"the runs measured different models ({old_key} vs {new_key}): the model identity (weights, dtype, "
            "max_length) must match, or the comparison says nothing"
        )
    kind = "cuda" if new.profile.get("gpu") else "cpu"
    settings = GateSettings.for_device(kind, parse_threshold_rules(rules), parse_alpha(alpha, "--alpha"))
    throttled = throttled_cells([*old.cells, *new.cells])  # either side: a throttled reference is no reference
    planned = planned_cells(new.cells) if new.cells else None
    return gate(base, now, settings, str(old_path), str(new_key), planned, throttled)


def _diff(args: argparse.Namespace) -> int:
    old_path, new_path = Path(args.old), Path(args.new)
    old, new = load_report(old_path), load_report(new_path)
    report = diff_reports(old, new, old_path, new_path, args.threshold, args.alpha)
    old_profile, new_profile = old.profile.get("profile_id"), new.profile.get("profile_id")
    if old_profile != new_profile:
        print(f"NOTE: different hardware profiles ({old_profile} vs {new_profile}): differences are expected")
    for line in format_gate(report):
        print(line)
    shortfall = report.shortfall() if args.require_full else ""
    if shortfall:
        print(f"FAILED: --require-full: not a full comparison: {shortfall}")
    if args.markdown:
        markdown = Path(args.markdown)
        with _writing(markdown, "--markdown"):
            markdown.parent.mkdir(parents=True, exist_ok=True)  # like --out: a new folder is made, not refused
            write_atomic(markdown, gate_markdown(report, f"{old_profile} -> {new_profile}"))
    return 1 if report.status in ("fail", "incomplete") or shortfall else 0


def _profiles(args: argparse.Namespace) -> int:
    table = profiles_table(read_profiles(Path(args.baselines)))
    if args.update:
        page = Path(args.update)
        try:
            text = page.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"--update {page}: cannot read it ({exc.strerror or exc}); pass docs/hardware.md"
            ) from None
        with _writing(page, "--update"):
            write_atomic(page, with_table(text, table.markdown(), str(page)))
        print(f"wrote {page}")
        return 0
    for line in table.markdown() if args.markdown else table.text():
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="rerank-perf", description=__doc__.split("\n\n")[0], epilog=EXIT_CODES, formatter_class=raw
    )
    sub = parser.add_subparsers(dest="command", required=True)
    what = "re-render a report folder (index.md and plots) from saved JSON"
    render = sub.add_parser("render", help=what, description=what, epilog=RENDER_EXIT_CODES, formatter_class=raw)
    render.add_argument("report", help="reports/report.json, or a pytest-benchmark JSON written with the plugin active")
    render.add_argument(
        "--out", metavar="DIR", help="folder to write (default: the report's own; required for a pytest-benchmark JSON)"
    )
    render.set_defaults(run=_render)
    what = "compare two saved runs cell by cell, as the regression gate does"
    diff = sub.add_parser("diff", help=what, description=what, epilog=EXIT_CODES, formatter_class=raw)
    diff.add_argument("old", metavar="OLD", help="the reference run: report.json or a pytest-benchmark JSON")
    diff.add_argument("new", metavar="NEW", help="the run judged against OLD, same kind of file")
    diff.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[PATTERN:]METRIC=PCT",
        help="smallest change that counts, e.g. throughput=3%% or '*/bs8:latency=10%%'; repeatable",
    )
    diff.add_argument("--alpha", default=str(DEFAULT_ALPHA), help="significance level (default 0.01)")
    diff.add_argument("--markdown", metavar="FILE", help="also write the comparison as Markdown to FILE")
    diff.add_argument(
        "--require-full",
        action="store_true",
        help="exit 1 unless every cell of NEW was compared and every cell of OLD is in NEW (as the plugin's "
        "--rerank-require-baseline)",
    )
    diff.set_defaults(run=_diff)
    what = "list the committed hardware profiles: one row per profile and model"
    profiles = sub.add_parser("profiles", help=what, description=what, epilog=PROFILES_EXIT_CODES, formatter_class=raw)
    profiles.add_argument(
        "baselines",
        nargs="?",
        default="baselines",
        help="the folder of baseline profiles, or one file (default: %(default)s)",
    )
    profiles.add_argument("--markdown", action="store_true", help="print a Markdown table instead of text")
    profiles.add_argument(
        "--update", metavar="FILE", help="rewrite the table between the profile markers in FILE (docs/hardware.md)"
    )
    profiles.set_defaults(run=_profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # argparse's own usage errors exit 2
    try:
        return int(args.run(args))
    except RerankPerfError as exc:
        print(f"rerank-perf: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
