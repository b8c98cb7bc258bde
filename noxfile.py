"""Sessions: tests (CPU), lint (ruff + mypy), gpu-bench (the suite and its regression gate), gpu-ab (two builds
compared on this machine), gpu-selfcheck, record-baseline."""

from __future__ import annotations

import os
import subprocess
import sys

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_venv = "yes"  # installs still run but are no-ops on a warm venv

# torch==2.13.0 is a local CPU wheel on our CPU machines and the CUDA build from PyPI on a GPU box.
# Override for another build, e.g. RERANK_PERF_TORCH="torch --index-url https://download.pytorch.org/whl/cu128".
TORCH = os.environ.get("RERANK_PERF_TORCH", "torch==2.13.0")


def install(session: nox.Session, *extra: str, target: str = ".") -> None:
    session.install(*TORCH.split())
    session.install("-e", target, *extra)


@nox.session
def tests(session: nox.Session) -> None:
    """The plugin's own tests, on the CPU with the tiny twin (and one full-size twin build), one pytest-xdist worker
    per core. ``worksteal``: an idle worker takes tests queued on a busy one, so the few long end-to-end tests (run
    first, tests/conftest.py) never leave one worker finishing alone."""
    install(session, target=".[test]")  # pytest-xdist: the workers and the multi-worker tests; pyyaml: the CI example
    session.run("pytest", "tests", "-n", "auto", "--dist", "worksteal", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    install(session, "ruff", "mypy")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


# Processes pooled on each side of a comparison (docs/gate.md, "Detection power"): the baseline pools RECORD_PROCESSES,
# a gated run GATE_PROCESSES: auto is 3 on a GPU and 2 on the CPU fallback (options.GPU_GATE_PROCESSES,
# CPU_GATE_PROCESSES), where each pooled process costs more in imports and model loading than the tiny twin's matrix.
RECORD_PROCESSES = 10
GATE_PROCESSES = "auto"


@nox.session(name="gpu-bench")
def gpu_bench(session: nox.Session) -> None:
    """The matrix, the dynamic batcher under load, scenarios and the gate on the local GPU in FP16 (tiny twin on the
    CPU when there is none). Writes the report folder reports/ (index.md, report.json, PNG plots, benchmark.json).
    The matrix is measured in GATE_PROCESSES fresh processes, pooled, so the gate sees between-process drift
    (``-- --rerank-processes 1`` for a quick look). With several GPUs: ``nox -s gpu-bench -- -n <GPUs>
    --rerank-processes 1`` (one pytest-xdist worker per GPU). The terminal is a summary, the verdict first;
    pytest-benchmark's own tables are left out of it (``--benchmark-quiet``): its figures are in
    reports/benchmark.json and the matrix in reports/index.md."""
    install(session, target=".[multi-gpu]")
    os.makedirs("reports", exist_ok=True)
    session.run(
        "pytest",
        "benchmarks",
        "--benchmark-json=reports/benchmark.json",
        "--benchmark-quiet",
        f"--rerank-processes={GATE_PROCESSES}",
        *session.posargs,
    )


@nox.session(name="gpu-ab")
def gpu_ab(session: nox.Session) -> None:
    """A/B on this machine: ``nox -s gpu-ab -- --rerank-ab-base SPEC --rerank-ab-head SPEC [pytest options]``. Both
    sides measure the matrix in --rerank-ab-pairs pairs of fresh processes, interleaved, each pair's order random;
    the verdict comes from the paired ratios (docs/ab.md). The exit code is the verdict's, passed through nox as it
    is, so ``git bisect run nox -s gpu-ab -- --rerank-ab-base GOOD --rerank-ab-head .`` works: 0 pass, 1
    regression, 125 could not judge (bisect's skip), 4 bad options."""
    if not {"--rerank-ab-base", "--rerank-ab-head"} <= {a.split("=")[0] for a in session.posargs}:
        session.log("gpu-ab compares two sides: nox -s gpu-ab -- --rerank-ab-base SPEC --rerank-ab-head SPEC")
        sys.exit(4)  # pytest's usage error (git bisect reads it as bad: fix the command, not the commit)
    try:
        install(session)
    except Exception:  # nox's CommandFailed: this commit's environment would not build; bisect skips it
        session.log("gpu-ab: the environment would not build: no verdict (exit 125)")
        sys.exit(125)
    if getattr(getattr(session, "_runner", None), "global_config", None) and session._runner.global_config.install_only:
        return  # nox --install-only: the environment only (a GPU box prepared before going offline)
    os.makedirs("reports", exist_ok=True)
    code = subprocess.call(
        [os.path.join(session.bin, "pytest"), "benchmarks/test_throughput_matrix.py", *session.posargs]
    )
    if code:
        sys.exit(code)  # not nox's "session failed" (exit 1): bisect tells 1 from 125


@nox.session(name="gpu-selfcheck")
def gpu_selfcheck(session: nox.Session) -> None:
    """The harness's own assumptions on this GPU, as a table of check, measured value and verdict: CUDA events vs
    wall time, per-cell memory reset, NVML visibility, other processes, clocks and throttling during a cell, and the
    run-to-run spread over fresh processes. Run it first on a new machine. Same as ``pytest benchmarks/selfcheck``."""
    install(session)
    session.run("pytest", "benchmarks/selfcheck", *session.posargs)


@nox.session(name="record-baseline")
def record_baseline(session: nox.Session) -> None:
    """Record this machine's baseline profile under baselines/ (pass --rerank-force to replace recorded cells).

    RECORD_PROCESSES fresh pytest processes measure the matrix with 3x the rounds; their cells are pooled, each
    process's median kept, and written once, atomically, only if every process completed. Arguments after ``--``
    go to pytest, e.g. ``nox -s record-baseline -- --rerank-force``.
    """
    install(session)
    session.run(
        "pytest",
        "benchmarks/test_throughput_matrix.py",
        "benchmarks/test_oom_boundary.py",  # boundaries: GPU only, measured once
        "--rerank-save-baseline",
        f"--rerank-processes={RECORD_PROCESSES}",
        *session.posargs,
    )
