"""The baseline schema (version 1): one profile per hardware profile, one section per model identity key, one
cell per (workload, batch size), each metric of the ``Metric`` registry stored under its ``stored_as`` name.

``samples`` metrics keep their round samples and a summary (median, IQR, bootstrap CI), because the gate runs a
rank test on the samples themselves; ``value`` metrics keep one figure. Fields added to the registry after a file
was written read as None (not measured then), so committed files stay valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..stats import bootstrap_median_ci, iqr
from ..trackers.metrics import CELL_GATED, Metric

SCHEMA_VERSION = 2  # 2: content-hash model keys, per-process medians, the machine fingerprint
SAMPLED: tuple[Metric, ...] = tuple(m for m in CELL_GATED if m.kind == "samples")
VALUED: tuple[Metric, ...] = tuple(m for m in CELL_GATED if m.kind == "value")


def stored_float(value: float) -> float:
    """6 significant digits, as files store figures: far below timing noise, and short diffs."""
    return float(f"{value:.6g}")


def stored_value(value: float) -> float | int:
    """Whole numbers (bytes) as integers, everything else at 6 significant digits."""
    return int(value) if float(value).is_integer() else stored_float(value)


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cell_key(workload_id: str, batch_size: int, variant: str = "predict") -> str:
    """``<workload id>/bs<B>``, and ``+<variant>`` for a variant's cell; the workload id ends in ``-n<pairs>``,
    e.g. ``fixed256-...-s0-n50/bs16`` or ``fixed256-...-s0-n50/bs16+token-sorted``."""
    return f"{workload_id}/bs{batch_size}" + ("" if variant == "predict" else f"+{variant}")


def key_of(cell: Mapping[str, Any]) -> str:
    """The key of a cell's report JSON (cells written before variants existed are ``predict``'s)."""
    return cell_key(cell["workload_id"], cell["batch_size"], cell.get("variant") or "predict")


_CELL_KEY = re.compile(r"(.*)-n(\d+)/bs(\d+)(?:\+(.+))?")


def split_cell_key(key: str) -> tuple[str, str]:
    """(workload, short name) of a cell key: ``fixed256-...-s0-n50/bs16+token-sorted`` is ``fixed256-...-s0`` and
    ``n50/bs16+token-sorted``; a key of another shape (an OOM boundary's) is ``("", key)``."""
    m = _CELL_KEY.fullmatch(key)
    if not m:
        return "", key
    return m[1], f"n{m[2]}/bs{m[3]}" + (f"+{m[4]}" if m[4] else "")


def cell_sort_key(key: str) -> tuple[str, int, int, str]:
    """Cell keys sorted by workload, then pairs and batch size as numbers, predict before its variants."""
    m = _CELL_KEY.fullmatch(key)
    return (m[1], int(m[2]), int(m[3]), m[4] or "") if m else (key, 0, 0, "")


@dataclass(frozen=True)
class MetricSummary:
    """Round samples of one metric of one cell, and their summary."""

    unit: str
    median: float
    iqr: tuple[float, float]
    ci95: tuple[float, float]  # bootstrap CI of the median
    samples: tuple[float, ...]
    # the median of each process pooled into ``samples``: their spread is the between-process drift (gate/drift.py)
    process_medians: tuple[float, ...] = ()

    @staticmethod
    def of(
        samples: Sequence[float], unit: str, process_medians: Sequence[float] | None = None, ci: bool = True
    ) -> MetricSummary:
        """``process_medians`` None: the samples are one process's. ``ci=False`` leaves out the bootstrap interval
        (shown, never judged), for simulations that build thousands of summaries."""
        values = tuple(stored_float(s) for s in samples)
        median = float(np.median(values))
        medians = (stored_float(median),) if process_medians is None else tuple(process_medians)
        interval = bootstrap_median_ci(values) if ci else (median, median)
        return MetricSummary(unit, median, iqr(values), interval, values, medians)

    def pooled(self, other: MetricSummary, ci: bool = True) -> MetricSummary:
        """Both processes' rounds as one recording, each process's median kept."""
        medians = self.process_medians + other.process_medians
        return MetricSummary.of(self.samples + other.samples, other.unit, medians, ci)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "median": self.median,
            "iqr": list(self.iqr),
            "ci95": list(self.ci95),
            "process_medians": list(self.process_medians),
            "samples": list(self.samples),
        }


@dataclass(frozen=True)
class BaselineCell:
    workload_id: str
    num_pairs: int
    batch_size: int
    rounds: int
    samples: Mapping[str, MetricSummary]  # by metric name; "throughput" always
    values: Mapping[str, float | None]  # by metric name; None: not measured (the CPU has no VRAM figure)
    tokens_per_s: float
    recorded_at: str
    runs: int = 1  # processes pooled into the samples (record-baseline pools 3: one process's drift averages out)
    variant: str = "predict"

    @property
    def key(self) -> str:
        return cell_key(self.workload_id, self.batch_size, self.variant)

    @property
    def throughput(self) -> MetricSummary:
        return self.samples["throughput"]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "workload_id": self.workload_id,
            "num_pairs": self.num_pairs,
            "batch_size": self.batch_size,
            "rounds": self.rounds,
        }
        if self.variant != "predict":  # predict's cells read as they did before variants existed
            out["variant"] = self.variant
        for m in SAMPLED:
            summary = self.samples.get(m.name)
            out[m.stored_as] = summary.to_dict() if summary else None
        out["tokens_per_s"] = self.tokens_per_s
        for m in VALUED:
            value = self.values.get(m.name)
            out[m.stored_as] = None if value is None else stored_value(value)
        return {**out, "recorded_at": self.recorded_at, "runs": self.runs}

    def pooled(self, other: BaselineCell) -> BaselineCell:
        """This cell's samples and ``other``'s (another process, same cell) as one recording."""
        samples = {
            name: self.samples[name].pooled(mine) for name, mine in other.samples.items() if name in self.samples
        }
        values: dict[str, float | None] = {}
        for m in VALUED:
            both = [v for v in (self.values.get(m.name), other.values.get(m.name)) if v is not None]
            values[m.name] = m.pooled(both) if both else None
        throughput = samples["throughput"]
        return replace(
            other,
            rounds=self.rounds + other.rounds,
            samples=samples,
            values=values,
            tokens_per_s=stored_float(throughput.median * other.tokens_per_s / other.throughput.median),
            runs=self.runs + other.runs,
        )


@dataclass(frozen=True)
class ModelBaseline:
    """Every recorded cell of one model identity on one hardware profile."""

    identity: dict[str, Any]
    hardware: dict[str, Any]
    software: dict[str, str]
    recorded_at: str
    cells: dict[str, BaselineCell] = field(default_factory=dict)
    oom_boundaries: dict[str, int] = field(default_factory=dict)  # max_length -> largest batch that fits

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "hardware": self.hardware,
            "software": self.software,
            "recorded_at": self.recorded_at,
            "cells": {k: self.cells[k].to_dict() for k in sorted(self.cells, key=cell_sort_key)},
            "oom_boundaries": dict(sorted(self.oom_boundaries.items(), key=lambda kv: int(kv[0]))),
        }


@dataclass(frozen=True)
class BaselineProfile:
    profile_id: str
    models: dict[str, ModelBaseline] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "profile_id": self.profile_id,
            "models": {k: self.models[k].to_dict() for k in sorted(self.models)},
        }


_NUMBER_LIST = re.compile(r"\[\s*([-+0-9.eE,\s]+?)\s*\]")


def dumps(profile: BaselineProfile) -> str:
    """Indented JSON with number lists (the samples) on one line each: readable diffs in review."""
    text = json.dumps(profile.to_dict(), indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m[1].split(",")) + "]", text) + "\n"


def cell_from_json(cell: Mapping[str, Any], recorded_at: str) -> BaselineCell | None:
    """A measured cell (its report JSON) as the baseline stores it; None for cells that did not run."""
    samples = cell.get("samples") or {}
    if cell.get("status") != "ok" or not samples.get("throughput") or cell.get("tokens_per_s") is None:
        return None
    return BaselineCell(
        workload_id=cell["workload_id"],
        num_pairs=cell["num_pairs"],
        batch_size=cell["batch_size"],
        rounds=len(samples["throughput"]),
        samples={m.name: MetricSummary.of(samples[m.name], m.unit) for m in SAMPLED if samples.get(m.name)},
        values={m.name: m.read(cell) for m in VALUED},
        tokens_per_s=stored_float(cell["tokens_per_s"]),
        recorded_at=recorded_at,
        variant=cell.get("variant") or "predict",
    )


def section_from_cells(
    cells: Sequence[Mapping[str, Any]],
    identity: Mapping[str, Any],
    hardware: Mapping[str, Any],
    oom_boundaries: Mapping[str, int] | None = None,
) -> ModelBaseline:
    """This run's measured cells (report JSON) as a baseline section: what is recorded, and what the gate judges."""
    stamp = now_utc()
    stored = [c for c in (cell_from_json(cell, stamp) for cell in cells) if c is not None]
    return ModelBaseline(
        identity={k: v for k, v in identity.items() if k not in ("path", "device")},  # meaningless on another box
        hardware={k: v for k, v in hardware.items() if k != "software"},
        software=dict(hardware.get("software") or {}),
        recorded_at=stamp,
        cells={c.key: c for c in stored},
        oom_boundaries=dict(oom_boundaries or {}),
    )
