"""Every command-line option and ini key of the plugin: flag, ini key, default and help (``options`` validates
them into ``RerankOptions``)."""

from __future__ import annotations

from ..backends import DEFAULT_BACKEND, DEFAULT_MAX_LENGTH, LOADERS, MODEL_CHOICES
from ..backends.variants import CHOICES as VARIANT_CHOICES
from ..gate.thresholds import DEFAULT_ALPHA
from ..validation import DEVICE_CHOICES

DEFAULT_PAIR_TOKENS = "fixed:256"
# docs/ab.md, "Detection power": on the 2-core CPU runner a duet of 10 pairs catches a 20% slowdown in 97% of cells
# (interleaved 6 pairs: 87%) in less time; a GPU runs the sides in turn, where kernel times repeat far more tightly.
AB_PAIRS_GPU = 6
AB_PAIRS_CPU = 10
AB_THRESHOLD = "5%"

# (option, ini key, default, help)
_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "--rerank-model",
        "rerank_model",
        "auto",
        f"model to measure: {MODEL_CHOICES} (auto: twin on GPU, twin-tiny on CPU)",
    ),
    ("--rerank-backend", "rerank_backend", DEFAULT_BACKEND, f"what serves the model: {', '.join(LOADERS)}"),
    (
        "--rerank-spread-processes",
        "rerank_spread_processes",
        "3",
        "self-check: fresh processes that measure the run-to-run spread (at least 2)",
    ),
    (
        "--rerank-processes",
        "rerank_processes",
        "1",
        "fresh pytest processes that measure the matrix, pooled into this run's cells (this one plus K-1 more): the "
        "gate then sees the between-process drift, and a recording keeps each process's median; auto: 3 on a GPU, "
        "2 on the CPU fallback",
    ),
    ("--rerank-device", "rerank_device", "auto", f"device: {DEVICE_CHOICES}"),
    ("--rerank-dtype", "rerank_dtype", "auto", "precision: auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16"),
    ("--rerank-max-length", "rerank_max_length", str(DEFAULT_MAX_LENGTH), "tokens per pair before truncation"),
    ("--rerank-batch-sizes", "rerank_batch_sizes", "", "comma-separated batch sizes (default depends on device)"),
    ("--rerank-num-pairs", "rerank_num_pairs", "", "comma-separated pairs per predict call (default by device)"),
    (
        "--rerank-pair-tokens",
        "rerank_pair_tokens",
        DEFAULT_PAIR_TOKENS,
        "encoded pair length: N, fixed:N, uniform:LOW-HIGH, longtail, longtail:MEDIAN",
    ),
    ("--rerank-seed", "rerank_seed", "0", "workload seed"),
    (
        "--rerank-variants",
        "rerank_variants",
        "",
        f"backend configurations measured beside predict on the same cells, comma-separated: {VARIANT_CHOICES} "
        "(each keyed apart in baselines; its scores must match predict's first)",
    ),
    (
        "--rerank-workload",
        "rerank_workload",
        "",
        'your own data instead of seeded pairs: a JSONL file of rerank requests {"query", "documents": [...]} '
        '(one predict call per request) or flat pairs {"query", "document"} (num_pairs chunks), one shape per '
        "file; relative to the current directory (an ini value: to the rootdir)",
    ),
    (
        "--rerank-rounds",
        "rerank_rounds",
        "auto",
        "measured rounds per cell: auto (>= 10 rounds and >= 1 s on GPU; >= 10 and 0.25 s on CPU; 3x when recording) "
        "or a number",
    ),
    (
        "--rerank-cpu-threads",
        "rerank_cpu_threads",
        "1",
        "torch threads on the CPU fallback (1: a shared 2-core machine repeats far better on one thread)",
    ),
    (
        "--rerank-gate",
        "rerank_gate",
        "auto",
        "what a regression does: enforce (fail the run), advisory (report only), off; auto: enforce on a GPU, "
        "advisory on the CPU fallback, where one run differs from the next by up to ~35 percent",
    ),
    (
        "--rerank-baseline-dir",
        "rerank_baseline_dir",
        "baselines",
        "directory of baseline profiles (one JSON per hardware profile), relative to the rootdir, or a store URL",
    ),
    (
        "--rerank-alpha",
        "rerank_alpha",
        str(DEFAULT_ALPHA),
        "significance level of the gate's two one-sided tests: Mann-Whitney U on the rounds, and the process medians "
        "against the between-process drift",
    ),
    (
        "--rerank-report-dir",
        "rerank_report_dir",
        "reports",
        "the report folder (index.md, report.json, plots, gate verdicts), relative to the rootdir",
    ),
    (
        "--rerank-inject-slowdown",
        "rerank_inject_slowdown",
        "0",
        "TEST HOOK: stretch every forward by this fraction (0.3 means 30 percent slower) to prove the gate fires",
    ),
    (
        "--rerank-ab-base",
        "rerank_ab_base",
        "",
        "A/B: the base side: a git ref or commit, '.' (the working tree), a directory holding a checkout, or "
        "pip:REQ[,REQ...]; with --rerank-ab-head, this run measures both sides in pairs of fresh processes instead "
        "of itself (docs/ab.md)",
    ),
    ("--rerank-ab-head", "rerank_ab_head", "", "A/B: the head side (as --rerank-ab-base)"),
    (
        "--rerank-ab-pairs",
        "rerank_ab_pairs",
        "auto",
        f"A/B: pairs of fresh processes (one base, one head each, in random order); at least 2 (auto: "
        f"{AB_PAIRS_GPU} on a GPU, {AB_PAIRS_CPU} on the CPU)",
    ),
    (
        "--rerank-ab-threshold",
        "rerank_ab_threshold",
        AB_THRESHOLD,
        "A/B: the change a timed metric must exceed (and be significant) to be a regression",
    ),
    (
        "--rerank-ab-mode",
        "rerank_ab_mode",
        "auto",
        "A/B: interleaved (a pair's processes one after the other) or duet (at once, a CPU core each; CPU only); "
        "auto: duet on a CPU with at least 2 cores for this process (the first two), else interleaved",
    ),
)

# (flag, dest, help): on/off switches, command line only
_FLAGS: tuple[tuple[str, str, str], ...] = (
    (
        "--rerank-save-baseline",
        "rerank_save_baseline",
        "record this run as the baseline for this hardware profile and model (only a complete run records; pool "
        "processes with --rerank-processes 3)",
    ),
    ("--rerank-force", "rerank_force", "with --rerank-save-baseline: replace cells already recorded"),
    (
        "--rerank-baseline-append",
        "rerank_baseline_append",
        "with --rerank-save-baseline: pool this run's samples into cells already recorded (another process)",
    ),
    (
        "--rerank-require-baseline",
        "rerank_require_baseline",
        "fail the run unless it is a full comparison: a baseline that holds every planned cell, all compared",
    ),
)
