"""The ``Metric`` registry: every per-cell figure the tool reports, and how each consumer treats it.

The gate (direction, thresholds, rank test or threshold alone), the baseline schema (which field, how recording
processes pool), the matrix tables (column and format) and the plots all read ``METRICS``, so a new figure is one
entry here plus the tracker that writes its ``cell_field``.

- ``samples`` metrics are judged by a one-sided rank test on per-round samples (``cell["samples"][name]``) and a
  threshold; ``value`` metrics (one figure per cell, deterministic for a code path) by the threshold alone.
- ``gated=False`` metrics are shown but never judged (derived figures such as tokens/s).
- ``scope="boundary"`` metrics are per max_length, not per cell (the out-of-memory boundary).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["samples", "value"]


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def _ms(value: float) -> str:
    return f"{value * 1e3:.2f}"


@dataclass(frozen=True)
class Metric:
    name: str  # the gate's and the thresholds' name
    label: str  # table column / plot axis
    unit: str
    higher_is_better: bool
    cell_field: str  # dotted path into the cell JSON
    kind: Kind = "value"
    gated: bool = True
    thresholds: Mapping[str, float] | None = None  # per device kind ("cuda", "cpu"); None: not gated there
    baseline_field: str | None = None  # key in a baseline cell (default: name)
    pool: Literal["max", "mean"] = "max"  # value metrics: how recording processes combine
    scope: Literal["cell", "boundary"] = "cell"
    column: bool | Literal["if measured"] = True  # shown in the matrix table ("if measured": where a cell has it)
    plot: bool = False  # a "<name>.png" against batch size
    fmt: Callable[[float], str] = "{:,.1f}".format
    described: str = ""  # what the gate's table calls it, where the name alone would mislead

    @property
    def stored_as(self) -> str:
        return self.baseline_field or self.name

    def threshold(self, device_kind: str) -> float | None:
        return (self.thresholds or {}).get("cuda" if device_kind == "cuda" else "cpu")

    def read(self, cell: Mapping[str, Any]) -> float | None:
        """The figure in a cell's JSON; None where the cell has none."""
        value: Any = cell
        for part in self.cell_field.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return None if value is None else float(value)

    def pooled(self, values: list[float]) -> float:
        return max(values) if self.pool == "max" else sum(values) / len(values)

    def worse(self, change: float) -> bool:
        """Whether a relative change (now / baseline - 1) goes the wrong way."""
        return change != 0 and (change < 0) == self.higher_is_better


# GPU kernels repeat to within ~1%: 5% is far outside their noise. On a shared CPU one process differs from the
# next by 3-5% (docs/gate.md, "Detection power"), so 5% there would fire on noise; 15% does not.
_TIMED = {"cuda": 0.05, "cpu": 0.15}

METRICS: tuple[Metric, ...] = (
    Metric("throughput", "pairs/s", "pairs/s", True, "pairs_per_s", "samples", thresholds=_TIMED),
    Metric("tokens", "tokens/s", "tokens/s", True, "tokens_per_s", gated=False, fmt="{:,.0f}".format),
    Metric("p50", "p50 ms", "s", False, "latency_s.call.median", gated=False, fmt=_ms),
    Metric("p99", "p99 ms", "s", False, "latency_s.call.p99", gated=False, fmt=_ms),
    # a data file's rounds make one predict call per request (or chunk): what each call took, over every round
    Metric(
        "request_p50", "request p50 ms", "s", False, "latency_s.request.p50", gated=False, fmt=_ms, column="if measured"
    ),
    Metric(
        "request_p99", "request p99 ms", "s", False, "latency_s.request.p99", gated=False, fmt=_ms, column="if measured"
    ),
    Metric(
        "latency",
        "forward ms/batch",
        "s/batch",
        False,
        "latency_s.batch.median",
        "samples",
        thresholds=_TIMED,
        column=False,
        fmt=_ms,
        described="forward time per batch",
    ),
    Metric(
        "vram",
        "peak VRAM",
        "bytes",
        False,
        "peak_vram_allocated_bytes",
        thresholds={"cuda": 0.05, "cpu": 0.05},
        baseline_field="peak_vram_bytes",
        fmt=_gib,
    ),
    # NVML's counter covers the whole GPU over a few seconds: noisier than kernel time, so 10%.
    Metric(
        "energy",
        "J/1k pairs",
        "J/1k pairs",
        False,
        "energy_j_per_1k_pairs",
        thresholds={"cuda": 0.10},
        pool="mean",
        plot=True,
    ),
    Metric("mfu", "MFU", "", True, "mfu", gated=False, fmt="{:.1%}".format),
    # where a call's time goes (trackers/breakdown.py): shares of the instrumented call, shown in their own table
    *(
        Metric(
            f"{part}_share",
            f"{part} share",
            "",
            False,
            f"breakdown.parts.{part}.share",
            gated=False,
            column=False,
            fmt="{:.0%}".format,
        )
        for part in ("tokenize", "h2d", "forward", "rest")
    ),
    Metric(
        "max_batch",
        "largest batch",
        "pairs",
        True,
        "max_batch",
        thresholds={"cuda": 0.05, "cpu": 0.05},
        scope="boundary",
        column=False,
        fmt="{:.0f} pairs".format,
    ),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
GATED: tuple[Metric, ...] = tuple(m for m in METRICS if m.gated)
CELL_GATED: tuple[Metric, ...] = tuple(m for m in GATED if m.scope == "cell")


def metric(name: str) -> Metric:
    return BY_NAME[name]
