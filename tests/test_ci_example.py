"""The example GPU-runner workflow stays in step with what the project really has: session, folder, files."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pytest_rerank_perf.plugin.options import _OPTIONS

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "ci" / "github-gpu-bench.yml"


def test_example_workflow_runs_the_gate_and_publishes_what_a_run_writes() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = flow["jobs"].values()
    assert "self-hosted" in job["runs-on"]
    assert "gpu" in job["runs-on"]
    steps = {s.get("name"): s for s in job["steps"]}
    command = steps["Benchmarks and regression gate"]["run"]
    session = re.search(r"nox -s (\S+)", command)
    assert session is not None
    assert f'name="{session.group(1)}"' in (ROOT / "noxfile.py").read_text()
    flags = re.findall(r"--rerank-[a-z-]+", command)
    known = {flag for flag, *_ in _OPTIONS} | {"--rerank-require-baseline"}
    assert set(flags) <= known, set(flags) - known

    report_dir = next(default for flag, _, default, _ in _OPTIONS if flag == "--rerank-report-dir")
    assert steps["Upload the report folder"]["with"]["path"].rstrip("/") == report_dir
    assert f"{report_dir}/index.md" in steps["Job summary"]["run"]
    assert f"{report_dir}/rerank-summary.md" in steps["Post the verdict on the pull request"]["run"]
    assert steps["Upload the report folder"]["if"] == "always()"  # a failing gate still publishes its report
