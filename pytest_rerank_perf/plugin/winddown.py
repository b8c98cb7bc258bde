"""An interrupted run's end (Ctrl-C or SIGTERM, during the tests or the session's end): keep what was measured, say
once what was and was not recorded, exit 2.

The baseline is either recorded in full (recording runs to its end before an interrupt is taken) and said so, or
left as it was, and this run's cells go to a side file as a refused recording's do. The gate does not judge part of
a run. The report folder is written from what was measured, marked incomplete; the cells kept as the run went
(``partial.py``) stay, named in the line. Signals are held meanwhile: a second Ctrl-C does not cut this short.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..errors import RerankPerfError
from ..report.folder import write_report
from ..store import BaselineError, section_from_cells
from ..store.schema import now_utc
from .interrupts import held
from .runtime import session_device, session_profile
from .session import RerankSession


def _baseline(rs: RerankSession, config: pytest.Config) -> str:
    """What happened to the baseline (or the comparison); "" when this run does neither."""
    report, opts, store = rs.report, rs.options, rs.store
    if report is None or store is None or rs.identity is None:
        return ""
    profile = session_profile(config)
    location = store.location(profile.profile_id)
    if not opts.save_baseline:
        if report.gate is not None:
            return f"the regression gate judged: {report.gate.status}"
        return "not compared with the baseline" if opts.gate != "off" else ""
    if report.baseline_recorded:
        return f"baseline recorded: {report.baseline_recorded}"
    kept = f"baseline not recorded ({location} left as it was)"
    if rs.set_aside_to:
        return f"{kept}; this run's cells were saved to {rs.set_aside_to}"
    section = report.section  # no fingerprint where the interrupt came first: a side file does not need one
    if section is None and report.cells:
        section = section_from_cells(report.cells, rs.identity, profile.to_dict())
    if section is None or not section.cells:
        return f"{kept}; no cell was measured"
    try:
        side = store.set_aside(profile.profile_id, rs.identity["key"], section, now_utc())
    except (BaselineError, OSError) as exc:
        return f"{kept}; this run's cells could not be saved aside ({exc})"
    rs.set_aside_to = side
    return f"{kept}; this run's {len(section.cells)} cell(s) were saved to {side}"


def wind_down(rs: RerankSession, session: pytest.Session, report_dir: Path, during: str) -> None:
    """The end of a run interrupted ``during`` (``"while pooled process 2 of 3 ran"``); sets ``rs.interrupted``."""
    config = session.config
    with held(reraise=False):
        session.exitstatus = pytest.ExitCode.INTERRUPTED
        if rs.report is None and not rs.measured:  # an earlier run's report folder stays as it was
            kept = rs.partial.describe(rs.options.report_dir)
            rs.interrupted = f"rerank-perf: INTERRUPTED {during}: nothing measured yet, nothing recorded" + (
                f"; {kept}" if kept else ""
            )
            return
        try:
            if rs.report is None:
                rs.report = rs.build_report(session_device(config), session_profile(config))
            facts = [_baseline(rs, config), rs.partial.describe(rs.options.report_dir)]
        except (RerankPerfError, pytest.UsageError, OSError) as exc:  # what could not be had is said, not raised
            facts = [f"nothing more kept ({exc})", rs.partial.describe(rs.options.report_dir)]
        said = "; ".join(f for f in facts if f)
        report = rs.report
        written = ""
        if report is not None:
            before = f"Before that: {report.failure}" if report.failure else ""  # a refused recording, say
            head = f"the run was interrupted {during}; this report is incomplete."
            parts = (head, f"{said}." if said else "", before)
            report.failure = " ".join(p for p in parts if p)
        if report is not None and not hasattr(config, "workeroutput"):  # an xdist worker's controller writes it
            try:
                write_report(report, report_dir)
                if not rs.options.save_baseline and rs.options.gate != "off":
                    rs.write_verdict(report_dir)  # a verdict reached before the interrupt; else an earlier one goes
                written = f"report (incomplete): {rs.options.report_dir}/index.md"
            except (OSError, RerankPerfError, ValueError) as exc:
                written = f"report not written ({exc})"
        head = f"rerank-perf: INTERRUPTED {during}" + (f": {said}" if said else "")
        rs.interrupted = f"{head}; {written}" if written else head
