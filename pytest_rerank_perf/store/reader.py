"""Strict reading of baseline JSON: every field checked, every error naming the file, the field and the fix."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RerankPerfError
from .schema import SAMPLED, SCHEMA_VERSION, VALUED, BaselineCell, BaselineProfile, MetricSummary, ModelBaseline


def record_command(root: Path | None) -> str:
    """How to record a baseline here: this repository's nox session, or the plugin's option in any other project."""
    try:
        own = root is not None and "record-baseline" in (root / "noxfile.py").read_text(encoding="utf-8")
    except OSError:
        own = False
    return "nox -s record-baseline" if own else "pytest <your benchmarks> --rerank-save-baseline --rerank-processes 3"


class BaselineError(RerankPerfError):
    """A baseline file is missing, unreadable, malformed or would be overwritten."""


class Reader:
    """Typed access to parsed JSON that names the file and the field path in every error."""

    def __init__(self, path: Path, what: str = "baseline", fix: str | None = None) -> None:
        self.path = path
        self.what = what
        self.fix = fix or (
            f"The file was not changed. Restore it from git (git checkout -- {path}) or record it again with "
            "--rerank-save-baseline --rerank-force."
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

    def summary(self, raw: Any, where: str) -> MetricSummary:
        raw = self.obj(raw, where)
        samples = self.get(raw, "samples", where)
        if not isinstance(samples, list) or not samples:
            raise self.fail(f"{where}.samples", "expected a non-empty list of round samples")
        values = tuple(self.positive(s, f"{where}.samples[{i}]") for i, s in enumerate(samples))
        median = self.positive(self.get(raw, "median", where), f"{where}.median")
        if not math.isclose(median, float(np.median(values)), rel_tol=1e-6):
            raise self.fail(f"{where}.median", f"{median} is not the median of the samples ({np.median(values):.6g})")
        unit = self.string(raw, "unit", where)
        medians = self.get(raw, "process_medians", where)
        if not isinstance(medians, list) or not medians:
            raise self.fail(f"{where}.process_medians", "expected a non-empty list: the median of each process")
        per_process = tuple(self.positive(m, f"{where}.process_medians[{i}]") for i, m in enumerate(medians))
        iqr, ci95 = self.pair(raw, "iqr", where), self.pair(raw, "ci95", where)
        return MetricSummary(unit, median, iqr, ci95, values, per_process)

    def optional_number(self, raw: dict[str, Any], key: str, where: str) -> float | None:
        """A value metric: absent (added after the file was written) or null means not measured."""
        value = raw.get(key)
        return None if value is None else self.positive(value, f"{where}.{key}")

    def cell(self, key: str, raw: Any, where: str) -> BaselineCell:
        raw = self.obj(raw, where)
        samples = {}
        for m in SAMPLED:
            value = self.get(raw, m.stored_as, where) if m.name == "throughput" else raw.get(m.stored_as)
            if value is not None:
                samples[m.name] = self.summary(value, f"{where}.{m.stored_as}")
        cell = BaselineCell(
            workload_id=self.string(raw, "workload_id", where),
            num_pairs=self.integer(raw, "num_pairs", where),
            batch_size=self.integer(raw, "batch_size", where),
            rounds=self.integer(raw, "rounds", where),
            samples=samples,
            values={m.name: self.optional_number(raw, m.stored_as, where) for m in VALUED},
            tokens_per_s=self.positive(self.get(raw, "tokens_per_s", where), f"{where}.tokens_per_s"),
            recorded_at=self.string(raw, "recorded_at", where),
            runs=self.integer(raw, "runs", where),
            variant=self.string(raw, "variant", where) if "variant" in raw else "predict",
        )
        if cell.key != key:
            raise self.fail(where, f"the key does not match its fields ({cell.key!r})")
        if len(cell.throughput.samples) != cell.rounds:
            raise self.fail(f"{where}.rounds", f"{cell.rounds} rounds but {len(cell.throughput.samples)} samples")
        if len(cell.throughput.process_medians) != cell.runs:
            shown = len(cell.throughput.process_medians)
            raise self.fail(f"{where}.runs", f"{cell.runs} processes but {shown} process medians")
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
    r = Reader(path)
    root = r.obj(data, "(top level)")
    version = r.get(root, "schema_version", "(top level)")
    if version != SCHEMA_VERSION:
        raise r.fail(
            "schema_version",
            f"this plugin reads schema version {SCHEMA_VERSION}, the file has {version!r} (version 1 keyed models by "
            "name and kept no per-process medians: record it again)",
        )
    profile_id = r.string(root, "profile_id", "(top level)")
    if path.suffix == ".json" and path.stem != profile_id:
        raise r.fail("profile_id", f"{profile_id!r} does not match the file name {path.name!r}")
    models = r.obj(r.get(root, "models", "(top level)"), "models")
    return BaselineProfile(profile_id, {k: r.model(v, f"models[{k!r}]") for k, v in models.items()})


def parse_section(data: Any, path: Path, where: str, fix: str) -> ModelBaseline:
    """One model's section outside a baseline file (a saved report's ``section``), read as strictly."""
    return Reader(path, "report", fix).model(data, where)


def read_profile(path: Path) -> BaselineProfile | None:
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
        raise Reader(path).fail(f"(line {exc.lineno}, column {exc.colno})", f"not valid JSON: {exc.msg}") from None
    return parse_profile(data, path)
