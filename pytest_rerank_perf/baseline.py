"""Baseline profiles: one schema-versioned JSON file per hardware profile under ``baselines/``.

A file holds one section per model identity key (source, name, config hash, dtype, max_length), so a twin run is
never compared with real weights, nor fp16 with bf16. Each section keeps, per cell, the round samples and their
summary (median, IQR, bootstrap CI), because the regression gate runs a rank test on the samples themselves.

Files are read strictly (every field checked, errors name the file and the field) and written atomically under a
file lock: temp file in the same directory, fsync, ``os.replace``. A reader never sees half a file, two writers
never lose each other's cells, and nothing already recorded is replaced unless asked (``--rerank-force``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RerankPerfError
from .hardware import HardwareProfile
from .measure import CellResult
from .stats import bootstrap_median_ci, iqr

SCHEMA_VERSION = 1
RECORD_COMMAND = "nox -s record-baseline"


class BaselineError(RerankPerfError):
    """A baseline file is missing, unreadable, malformed or would be overwritten."""


@dataclass(frozen=True)
class MetricSummary:
    """Round samples of one metric of one cell, and their summary."""

    unit: str
    median: float
    iqr: tuple[float, float]
    ci95: tuple[float, float]  # bootstrap CI of the median
    samples: tuple[float, ...]

    @staticmethod
    def of(samples: Sequence[float], unit: str) -> MetricSummary:
        values = tuple(stored_float(s) for s in samples)
        return MetricSummary(unit, float(np.median(values)), iqr(values), bootstrap_median_ci(values), values)

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "median": self.median, "iqr": list(self.iqr), "ci95": list(self.ci95),
                "samples": list(self.samples)}  # fmt: skip


@dataclass(frozen=True)
class BaselineCell:
    workload_id: str
    num_pairs: int
    batch_size: int
    rounds: int
    throughput: MetricSummary  # pairs/s per measured round
    latency: MetricSummary | None  # mean forward seconds per batch, per round
    tokens_per_s: float
    peak_vram_bytes: int | None  # torch's peak allocated; None on the CPU
    recorded_at: str
    runs: int = 1  # processes pooled into the samples (record-baseline pools 3: one process's drift averages out)

    @property
    def key(self) -> str:
        return cell_key(self.workload_id, self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload_id": self.workload_id,
            "num_pairs": self.num_pairs,
            "batch_size": self.batch_size,
            "rounds": self.rounds,
            "throughput": self.throughput.to_dict(),
            "latency": self.latency.to_dict() if self.latency else None,
            "tokens_per_s": self.tokens_per_s,
            "peak_vram_bytes": self.peak_vram_bytes,
            "recorded_at": self.recorded_at,
            "runs": self.runs,
        }

    def pooled(self, other: BaselineCell) -> BaselineCell:
        """This cell's samples and ``other``'s (another process, same cell) as one recording."""
        throughput = MetricSummary.of(self.throughput.samples + other.throughput.samples, self.throughput.unit)
        latency = None
        if self.latency and other.latency:
            latency = MetricSummary.of(self.latency.samples + other.latency.samples, self.latency.unit)
        vram = [v for v in (self.peak_vram_bytes, other.peak_vram_bytes) if v is not None]
        return replace(
            other,
            rounds=self.rounds + other.rounds,
            throughput=throughput,
            latency=latency,
            tokens_per_s=stored_float(throughput.median * other.tokens_per_s / other.throughput.median),
            peak_vram_bytes=max(vram) if vram else None,
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
            "cells": {k: self.cells[k].to_dict() for k in sorted(self.cells, key=_cell_sort_key)},
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


def stored_float(value: float) -> float:
    """6 significant digits, as files store figures: far below timing noise, and short diffs."""
    return float(f"{value:.6g}")


def cell_key(workload_id: str, batch_size: int) -> str:
    """``<workload id>/bs<B>``; the workload id ends in ``-n<pairs>``, e.g. ``fixed256-...-s0-n50/bs16``."""
    return f"{workload_id}/bs{batch_size}"


_CELL_KEY = re.compile(r"(.*)-n(\d+)/bs(\d+)")


def _cell_sort_key(key: str) -> tuple[str, int, int]:
    m = _CELL_KEY.fullmatch(key)
    return (m[1], int(m[2]), int(m[3])) if m else (key, 0, 0)


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def profile_path(directory: Path, profile_id: str) -> Path:
    return directory / f"{profile_id}.json"


# --- strict reading ------------------------------------------------------------------------------------------------


class _Reader:
    """Typed access to parsed JSON that names the file and the field path in every error."""

    def __init__(self, path: Path, what: str = "baseline", fix: str | None = None) -> None:
        self.path = path
        self.what = what
        self.fix = fix or (
            f"The file was not changed. Restore it from git (git checkout -- {path}) or record it again with "
            f"`{RECORD_COMMAND} -- --rerank-force`."
        )

    def fail(self, where: str, problem: str) -> BaselineError:
        return BaselineError(f"{self.what} {self.path}: field {where}: {problem}. {self.fix}")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        return value

    def get(self, parent: dict[str, Any], key: str, where: str) -> Any:
        if key not in parent:
            raise self.fail(f"{where}.{key}", "missing")
        return parent[key]

    def string(self, parent: dict[str, Any], key: str, where: str) -> str:
        value = self.get(parent, key, where)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key}", f"expected a non-empty string, got {value!r}")
        return value

    def integer(self, parent: dict[str, Any], key: str, where: str, minimum: int = 1, optional: bool = False) -> Any:
        value = self.get(parent, key, where)
        if optional and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{where}.{key}", f"expected an integer >= {minimum}, got {value!r}")
        return value

    def positive(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise self.fail(where, f"expected a positive finite number, got {value!r}")
        return float(value)

    def pair(self, parent: dict[str, Any], key: str, where: str) -> tuple[float, float]:
        value = self.get(parent, key, where)
        if not isinstance(value, list) or len(value) != 2:
            raise self.fail(f"{where}.{key}", f"expected [low, high], got {value!r}")
        low, high = (self.positive(v, f"{where}.{key}[{i}]") for i, v in enumerate(value))
        if low > high:
            raise self.fail(f"{where}.{key}", f"low {low} is above high {high}")
        return low, high

    def metric(self, parent: dict[str, Any], key: str, where: str) -> MetricSummary:
        where = f"{where}.{key}"
        raw = self.obj(self.get(parent, key, where.rpartition(".")[0]), where)
        samples = self.get(raw, "samples", where)
        if not isinstance(samples, list) or not samples:
            raise self.fail(f"{where}.samples", "expected a non-empty list of round samples")
        values = tuple(self.positive(s, f"{where}.samples[{i}]") for i, s in enumerate(samples))
        median = self.positive(self.get(raw, "median", where), f"{where}.median")
        if not math.isclose(median, float(np.median(values)), rel_tol=1e-6):
            raise self.fail(f"{where}.median", f"{median} is not the median of the samples ({np.median(values):.6g})")
        return MetricSummary(
            self.string(raw, "unit", where), median, self.pair(raw, "iqr", where), self.pair(raw, "ci95", where),
            values,
        )  # fmt: skip

    def cell(self, key: str, raw: Any, where: str) -> BaselineCell:
        raw = self.obj(raw, where)
        latency_raw = self.get(raw, "latency", where)
        cell = BaselineCell(
            workload_id=self.string(raw, "workload_id", where),
            num_pairs=self.integer(raw, "num_pairs", where),
            batch_size=self.integer(raw, "batch_size", where),
            rounds=self.integer(raw, "rounds", where),
            throughput=self.metric(raw, "throughput", where),
            latency=None if latency_raw is None else self.metric(raw, "latency", where),
            tokens_per_s=self.positive(self.get(raw, "tokens_per_s", where), f"{where}.tokens_per_s"),
            peak_vram_bytes=self.integer(raw, "peak_vram_bytes", where, optional=True),
            recorded_at=self.string(raw, "recorded_at", where),
            runs=self.integer(raw, "runs", where),
        )
        if cell.key != key:
            raise self.fail(where, f"the key does not match its fields ({cell.key!r})")
        if len(cell.throughput.samples) != cell.rounds:
            raise self.fail(f"{where}.rounds", f"{cell.rounds} rounds but {len(cell.throughput.samples)} samples")
        return cell

    def model(self, raw: Any, where: str) -> ModelBaseline:
        raw = self.obj(raw, where)
        cells = self.obj(self.get(raw, "cells", where), f"{where}.cells")
        booms = self.obj(raw.get("oom_boundaries", {}), f"{where}.oom_boundaries")
        for k in booms:
            if not k.isdigit():
                raise self.fail(f"{where}.oom_boundaries[{k!r}]", "keys are max_length values")
            self.integer(booms, k, f"{where}.oom_boundaries", minimum=0)
        software = self.obj(self.get(raw, "software", where), f"{where}.software")
        return ModelBaseline(
            identity=self.obj(self.get(raw, "identity", where), f"{where}.identity"),
            hardware=self.obj(self.get(raw, "hardware", where), f"{where}.hardware"),
            software={str(k): str(v) for k, v in software.items()},
            recorded_at=self.string(raw, "recorded_at", where),
            cells={k: self.cell(k, v, f"{where}.cells[{k!r}]") for k, v in cells.items()},
            oom_boundaries={k: int(v) for k, v in booms.items()},
        )


def parse_profile(data: Any, path: Path) -> BaselineProfile:
    r = _Reader(path)
    root = r.obj(data, "(top level)")
    version = r.get(root, "schema_version", "(top level)")
    if version != SCHEMA_VERSION:
        raise r.fail("schema_version", f"this plugin reads schema version {SCHEMA_VERSION}, the file has {version!r}")
    profile_id = r.string(root, "profile_id", "(top level)")
    if path.suffix == ".json" and path.stem != profile_id:
        raise r.fail("profile_id", f"{profile_id!r} does not match the file name {path.name!r}")
    models = r.obj(r.get(root, "models", "(top level)"), "models")
    return BaselineProfile(profile_id, {k: r.model(v, f"models[{k!r}]") for k, v in models.items()})


def parse_section(data: Any, path: Path, where: str, fix: str) -> ModelBaseline:
    """One model's section outside a baseline file (a saved report's ``section``), read as strictly."""
    return _Reader(path, "report", fix).model(data, where)


def load_profile(path: Path) -> BaselineProfile | None:
    """The profile stored at ``path``; None if there is no such file. Malformed files raise BaselineError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot be read ({exc}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Reader(path).fail(f"(line {exc.lineno}, column {exc.colno})", f"not valid JSON: {exc.msg}") from None
    return parse_profile(data, path)


# --- atomic, locked writing ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock beside ``path`` (released by the OS if the process dies)."""
    import fcntl

    lock_path = path.with_name(f".{path.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: readers see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the platform allows
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


_NUMBER_LIST = re.compile(r"\[\s*([-+0-9.eE,\s]+?)\s*\]")


def dumps(profile: BaselineProfile) -> str:
    """Indented JSON with number lists (the samples) on one line each: readable diffs in review."""
    text = json.dumps(profile.to_dict(), indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m[1].split(",")) + "]", text) + "\n"


def clashes(existing: BaselineProfile | None, key: str, cells: Iterable[str], booms: Iterable[str] = ()) -> list[str]:
    """Which of these cells (and OOM boundaries) the profile already records for model ``key``."""
    old = existing.models.get(key) if existing else None
    if old is None:
        return []
    found = sorted(set(old.cells) & set(cells))
    return found + [f"oom_boundaries[{k}]" for k in sorted(set(old.oom_boundaries) & set(booms))]


def clash_error(key: str, found: Sequence[str]) -> BaselineError:
    shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    return BaselineError(
        f"the baseline for {key} already records {shown}; nothing was overwritten. "
        "Add --rerank-force to replace them (cells not re-measured keep their values)."
    )


def merge(
    existing: BaselineProfile | None, key: str, section: ModelBaseline, force: bool, append: bool = False
) -> BaselineProfile:
    """``existing`` with ``section``'s cells added; cells not re-measured keep their old values.

    Replacing a recorded cell (or OOM boundary) needs ``force``; without it nothing changes and the clash is raised.
    ``append`` pools the samples of cells recorded before with this run's instead (another process, same cells).
    """
    base = existing or BaselineProfile(str(section.hardware.get("profile_id", "")))
    old = base.models.get(key)
    if old is None:
        return replace(base, models={**base.models, key: section})
    found = clashes(existing, key, section.cells, section.oom_boundaries)
    if found and not (force or append):
        raise clash_error(key, found)
    cells = dict(section.cells)
    if append:
        cells = {k: old.cells[k].pooled(c) if k in old.cells else c for k, c in cells.items()}
    merged = replace(
        section,
        cells={**old.cells, **cells},
        oom_boundaries={**old.oom_boundaries, **section.oom_boundaries},
    )
    return replace(base, models={**base.models, key: merged})


def record(path: Path, key: str, section: ModelBaseline, force: bool, append: bool = False) -> BaselineProfile:
    """Merge ``section`` into the profile file at ``path`` under the lock, atomically. Returns what was written."""
    with locked(path):
        merged = merge(load_profile(path), key, section, force, append)
        write_atomic(path, dumps(merged))
    return merged


def cell_from_result(result: CellResult, recorded_at: str) -> BaselineCell | None:
    """A measured cell as the baseline stores it; None for cells that did not run (OOM, skipped)."""
    if result.status != "ok" or not result.call_samples or result.tokens_per_s is None:
        return None
    n = result.cell.num_pairs
    return BaselineCell(
        workload_id=result.workload_id,
        num_pairs=n,
        batch_size=result.cell.batch_size,
        rounds=len(result.call_samples),
        throughput=MetricSummary.of([n / s for s in result.call_samples], "pairs/s"),
        latency=MetricSummary.of(result.batch_round_samples, "s/batch") if result.batch_round_samples else None,
        tokens_per_s=stored_float(result.tokens_per_s),
        peak_vram_bytes=result.memory.peak_allocated_bytes if result.memory else None,
        recorded_at=recorded_at,
    )


def section_from_results(
    results: Sequence[CellResult],
    identity: dict[str, Any],
    hardware: HardwareProfile,
    oom_boundaries: dict[str, int] | None = None,
) -> ModelBaseline:
    stamp = now_utc()
    cells = [c for c in (cell_from_result(r, stamp) for r in results) if c is not None]
    return ModelBaseline(
        identity={k: v for k, v in identity.items() if k not in ("path", "device")},  # meaningless on another box
        hardware={k: v for k, v in hardware.to_dict().items() if k != "software"},
        software=dict(hardware.software),
        recorded_at=stamp,
        cells={c.key: c for c in cells},
        oom_boundaries=dict(oom_boundaries or {}),
    )
