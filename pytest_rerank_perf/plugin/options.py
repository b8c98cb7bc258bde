"""Command-line options and ini keys, validated into one typed object before anything loads."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import pytest

from ..backends import LOADERS
from ..backends.cross_encoder import validate_max_length
from ..backends.variants import parse_variants
from ..errors import UsageError, WorkloadError
from ..gate.thresholds import (
    DEFAULT_ALPHA,
    GATED_NAMES,
    ThresholdRule,
    parse_alpha,
    parse_percent,
    parse_threshold_rules,
)
from ..scenarios import BUILT_IN, Scenario, parse_scenarios
from ..validation import canonical_dtype, device_text, parse_int, parse_int_list
from ..workloads.datafile import DataFile
from ..workloads.file_workload import num_pairs_axis, open_data_file
from ..workloads.lengths import LengthDist, parse_length_dist
from ..workloads.workload import WorkloadSpec
from .option_table import _FLAGS, _OPTIONS, AB_PAIRS_CPU, AB_PAIRS_GPU, DEFAULT_BACKEND, DEFAULT_PAIR_TOKENS

GPU_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
GPU_NUM_PAIRS = (10, 50, 100, 200)
# The CPU fallback (tiny twin) shows the harness working end to end, not GPU performance: its matrix is the least
# that exercises every part (a best batch size per input size, a realtime and an offline scenario, the gate) in
# seconds on 2 cores. It holds 8 (the seed tutorial's advice) and 32 (predict's default), the references every
# recommendation is measured against, and 1 (one pair per forward), so the best batch size is a choice.
CPU_BATCH_SIZES = (1, 8, 32)
CPU_NUM_PAIRS = (10, 50)
# Processes pooled by ``--rerank-processes auto`` (``nox -s gpu-bench``): 3 on a GPU (docs/gate.md, "Detection power");
# 2 on the CPU fallback, the fewest that measure the between-process drift: each process re-imports torch and
# reloads the model, which costs more than the tiny twin's whole matrix.
GPU_GATE_PROCESSES = 3
CPU_GATE_PROCESSES = 2


@dataclass(frozen=True)
class ABPlan:
    """An A/B run as asked for: the sides' SPECs (parsed against the repository by ``plugin/ab.py``)."""

    base: str
    head: str
    pairs: int | None  # None: auto, by device
    threshold: float
    mode: str  # auto | interleaved | duet
    base_args: tuple[str, ...] = ()
    head_args: tuple[str, ...] = ()

    def resolved(self, gpu: bool, cores: int) -> ABPlan:
        """Pairs and mode for this device: a GPU takes turns (interleaved, ``AB_PAIRS_GPU``); a CPU with two cores
        for this process runs each pair as a duet (``AB_PAIRS_CPU``). What was given explicitly stays."""
        mode = self.mode if self.mode != "auto" else "duet" if not gpu and cores >= 2 else "interleaved"
        pairs = self.pairs if self.pairs is not None else AB_PAIRS_GPU if gpu else AB_PAIRS_CPU
        return replace(self, pairs=pairs, mode=mode)


@dataclass(frozen=True)
class RerankOptions:
    model: str
    device: str
    dtype: str
    max_length: int
    batch_sizes: tuple[int, ...] | None  # None: the device's default matrix
    num_pairs: tuple[int, ...] | None
    pair_tokens: LengthDist
    seed: int
    rounds: int | None  # None: calibrated per cell
    cpu_threads: int = 1
    gate: str = "auto"  # auto | enforce | advisory | off
    baseline_dir: str = "baselines"
    save_baseline: bool = False
    force: bool = False
    append: bool = False
    require_baseline: bool = False
    thresholds: tuple[ThresholdRule, ...] = ()
    alpha: float = DEFAULT_ALPHA
    report_dir: str = "reports"
    inject_slowdown: float = 0.0
    scenarios: tuple[Scenario, ...] = BUILT_IN
    backend: str = DEFAULT_BACKEND
    spread_processes: int = 3
    processes: int = 1
    processes_auto: bool = False  # --rerank-processes auto: resolved by ``for_device`` once the device is known
    data: DataFile | None = None  # --rerank-workload: the user's data, read and checked once
    variants: tuple[str, ...] = ("predict",)  # --rerank-variants: predict first, always
    ab: ABPlan | None = None  # --rerank-ab-base/--rerank-ab-head: this run measures two sides instead of itself

    def workload_spec(self) -> WorkloadSpec:
        return WorkloadSpec(self.pair_tokens, seed=self.seed)

    @property
    def workload_label(self) -> str:
        """The workload part of test ids: the data file's id, or the seeded recipe's short label."""
        return self.data.id if self.data else self.workload_spec().label

    def workload_id(self, num_pairs: int) -> str:
        """The id of the workload a cell of ``num_pairs`` measures (cell keys are ``<id>/bs<B>``)."""
        return f"{self.data.id if self.data else self.workload_spec().id}-n{num_pairs}"

    def for_device(self, device: str) -> RerankOptions:
        """These options with ``--rerank-processes auto`` resolved for ``device``."""
        if not self.processes_auto:
            return self
        processes = GPU_GATE_PROCESSES if device.startswith("cuda") else CPU_GATE_PROCESSES
        return replace(self, processes=processes, processes_auto=False)

    def matrix(self, device: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(num_pairs, batch_sizes) to sweep: the options, else the device's default; a data file's own axis."""
        gpu = device.startswith("cuda")
        default = GPU_NUM_PAIRS if gpu else CPU_NUM_PAIRS
        num_pairs = num_pairs_axis(self.data, self.num_pairs, default) if self.data else self.num_pairs or default
        return num_pairs, self.batch_sizes or (GPU_BATCH_SIZES if gpu else CPU_BATCH_SIZES)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("rerank-perf", "cross-encoder reranker performance (pytest-rerank-perf)")
    for flag, ini, default, help_text in _OPTIONS:
        shown = f"{help_text} [ini: {ini}; default: {default or 'auto'}]".replace("%", "%%")  # argparse formats help
        group.addoption(flag, dest=ini, default=None, help=shown)
        parser.addini(ini, help=help_text, default=default)
    for flag, dest, help_text in _FLAGS:
        group.addoption(flag, dest=dest, action="store_true", default=False, help=help_text)
    group.addoption(
        "--rerank-threshold",
        dest="rerank_threshold",
        action="append",
        default=[],
        metavar="[PATTERN:]METRIC=PCT",
        help="gate threshold, e.g. throughput=5%% or '*-n10/bs1:latency=10%%' (repeatable; after the ini lines)",
    )
    for side in ("base", "head"):
        group.addoption(
            f"--rerank-ab-{side}-arg",
            dest=f"rerank_ab_{side}_arg",
            action="append",
            default=[],
            metavar="ARG",
            help=f"A/B: an extra pytest argument for the {side} side's processes only, e.g. "
            f"--rerank-ab-{side}-arg=--rerank-inject-slowdown=0.05 (repeatable)",
        )
    parser.addini(
        "rerank_thresholds",
        type="linelist",
        default=[],
        help=f"gate thresholds, one [PATTERN:]METRIC=PCT per line (metrics: {', '.join(GATED_NAMES)})",
    )
    parser.addini(
        "rerank_scenarios",
        type="linelist",
        default=[],
        help="scenario changes or additions, one 'NAME: pairs=1-10 p99=50ms [vram=4GiB] [concurrent=yes]' per line",
    )


def forwarded(config: pytest.Config, names: tuple[str, ...]) -> list[str]:
    """``--flag=value`` for the named options (ini keys) as this run resolved them: for a child pytest process that
    must measure what this one does."""
    return [f"{flag}={_raw(config, ini)}" for flag, ini, _, _ in _OPTIONS if ini in names and _raw(config, ini)]


def _raw(config: pytest.Config, ini: str) -> str:
    value = config.getoption(ini)
    return str(value if value is not None else config.getini(ini)).strip()


def parse_options(config: pytest.Config) -> RerankOptions:
    """All option values, validated; raises UsageError naming the option and the fix."""
    raw: dict[str, Any] = {ini: _raw(config, ini) for _, ini, _, _ in _OPTIONS}
    dtype = canonical_dtype(raw["rerank_dtype"])
    device = device_text(raw["rerank_device"])
    max_length = validate_max_length(parse_int("--rerank-max-length", raw["rerank_max_length"]), raw["rerank_model"])
    try:
        pair_tokens = parse_length_dist(raw["rerank_pair_tokens"])
    except WorkloadError as exc:
        raise UsageError(f"--rerank-pair-tokens: {exc}") from None
    num_pairs = parse_int_list("--rerank-num-pairs", raw["rerank_num_pairs"])
    data = _data_file(config, raw["rerank_workload"], num_pairs)
    return RerankOptions(
        data=data,
        model=raw["rerank_model"] or "auto",
        device=device,
        dtype=dtype,
        max_length=max_length,
        batch_sizes=parse_int_list("--rerank-batch-sizes", raw["rerank_batch_sizes"]),
        num_pairs=num_pairs,
        pair_tokens=pair_tokens,
        seed=parse_int("--rerank-seed", raw["rerank_seed"], minimum=0),
        rounds=None if raw["rerank_rounds"] == "auto" else parse_int("--rerank-rounds", raw["rerank_rounds"]),
        cpu_threads=parse_int("--rerank-cpu-threads", raw["rerank_cpu_threads"]),
        gate=_parse_choice("--rerank-gate", raw["rerank_gate"], ("auto", "enforce", "advisory", "off")),
        baseline_dir=raw["rerank_baseline_dir"] or "baselines",
        save_baseline=bool(config.getoption("rerank_save_baseline")),
        force=bool(config.getoption("rerank_force")),
        append=bool(config.getoption("rerank_baseline_append")),
        require_baseline=bool(config.getoption("rerank_require_baseline")),
        thresholds=parse_threshold_rules([*config.getini("rerank_thresholds"), *config.getoption("rerank_threshold")]),
        alpha=parse_alpha(raw["rerank_alpha"], "--rerank-alpha"),
        report_dir=raw["rerank_report_dir"] or "reports",
        inject_slowdown=_parse_slowdown(raw["rerank_inject_slowdown"]),
        scenarios=parse_scenarios(config.getini("rerank_scenarios")),
        backend=_parse_choice("--rerank-backend", raw["rerank_backend"], tuple(LOADERS)),
        spread_processes=parse_int("--rerank-spread-processes", raw["rerank_spread_processes"], minimum=2),
        processes=1 if raw["rerank_processes"] == "auto" else parse_int("--rerank-processes", raw["rerank_processes"]),
        processes_auto=raw["rerank_processes"] == "auto",
        variants=parse_variants(raw["rerank_variants"]),
        ab=_ab_plan(config, raw),
    )


def _ab_plan(config: pytest.Config, raw: dict[str, Any]) -> ABPlan | None:
    if os.environ.get("RERANK_AB_CHILD"):  # a side's process (plugin/ab.py CHILD_ENV): it measures, never nests
        return None
    base, head = raw["rerank_ab_base"], raw["rerank_ab_head"]
    extra = (tuple(config.getoption("rerank_ab_base_arg")), tuple(config.getoption("rerank_ab_head_arg")))
    if not base and not head:
        if any(extra):
            raise UsageError("--rerank-ab-base-arg/--rerank-ab-head-arg without an A/B: add --rerank-ab-base and -head")
        return None
    if not (base and head):
        given, missing = ("--rerank-ab-base", "--rerank-ab-head") if base else ("--rerank-ab-head", "--rerank-ab-base")
        raise UsageError(f"{given} without {missing}: an A/B needs both sides, e.g. {missing} .")
    clashing = [
        flag
        for flag, on in (
            ("--rerank-save-baseline", config.getoption("rerank_save_baseline")),
            ("--rerank-require-baseline", config.getoption("rerank_require_baseline")),
            ("--rerank-processes", raw["rerank_processes"] not in ("1", "auto")),
            (
                "--rerank-inject-slowdown (give it to one side: --rerank-ab-head-arg=--rerank-inject-slowdown=X)",
                _parse_slowdown(raw["rerank_inject_slowdown"]) != 0,
            ),
        )
        if on
    ]
    if clashing:
        raise UsageError(
            f"{', '.join(clashing)} with an A/B: an A/B compares two sides measured now, in its own pairs of "
            "processes (--rerank-ab-pairs); drop it, or run the A/B separately"
        )
    return ABPlan(
        base,
        head,
        None if raw["rerank_ab_pairs"] == "auto" else parse_int("--rerank-ab-pairs", raw["rerank_ab_pairs"], minimum=2),
        parse_percent(raw["rerank_ab_threshold"], "--rerank-ab-threshold"),
        _parse_choice("--rerank-ab-mode", raw["rerank_ab_mode"], ("auto", "interleaved", "duet")),
        *extra,
    )


def _data_file(config: pytest.Config, text: str, num_pairs: tuple[int, ...] | None) -> DataFile | None:
    """``--rerank-workload``, read and checked now: a bad file is one usage error before anything loads."""
    if not text:
        return None
    if config.getoption("rerank_pair_tokens") is not None or config.getini("rerank_pair_tokens") != DEFAULT_PAIR_TOKENS:
        raise UsageError(
            "--rerank-workload and --rerank-pair-tokens (or ini rerank_pair_tokens) both say what to measure: the "
            "file's pairs have their own lengths; drop one of them"
        )
    from_cli = config.getoption("rerank_workload") is not None
    return open_data_file(text, config.invocation_params.dir if from_cli else config.rootpath, num_pairs)


def _parse_choice(name: str, text: str, choices: tuple[str, ...]) -> str:
    value = text.lower()
    if value not in choices:
        raise UsageError(f"{name} {text!r}: choose one of {', '.join(choices)}")
    return value


def _parse_slowdown(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0", "0%") else parse_percent(text, "--rerank-inject-slowdown")
