"""One matrix cell: a (num_pairs, batch_size) predict call, how many rounds it gets, and what it measured."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..machine import device as dev
from ..trackers.metrics import METRICS

Status = Literal["ok", "oom", "skipped", "rejected"]  # rejected: scores differ from predict's


@dataclass(frozen=True, order=True)
class Cell:
    num_pairs: int
    batch_size: int
    workload: str = ""  # the workload's short label, e.g. "fixed256": test ids and saved params name it
    variant: str = "predict"  # the backend configuration (backends/variants.py)

    @property
    def id(self) -> str:
        """The pytest id, e.g. ``fixed256-n10-bs4`` (``...-bs4-token-sorted`` for a variant): pytest-benchmark
        pairs runs by it, so it names the workload and the variant."""
        prefix = f"{self.workload}-" if self.workload else ""
        suffix = "" if self.variant == "predict" else f"-{self.variant}"
        return f"{prefix}n{self.num_pairs}-bs{self.batch_size}{suffix}"

    def param(self) -> dict[str, Any]:
        """The test parameter as plain JSON (pytest-benchmark saves it; predict's is as it was before variants)."""
        param = {"workload": self.workload, "num_pairs": self.num_pairs, "batch_size": self.batch_size}
        return param if self.variant == "predict" else {**param, "variant": self.variant}

    @staticmethod
    def of(param: Any) -> Cell:
        variant = str(param.get("variant", "predict"))
        return Cell(int(param["num_pairs"]), int(param["batch_size"]), str(param.get("workload", "")), variant)


@dataclass(frozen=True)
class RoundsPolicy:
    """Enough rounds for a stable median: at least ``min_rounds`` and ``min_time_s`` of measured time."""

    warmup_rounds: int
    min_rounds: int
    min_time_s: float
    max_rounds: int = 200
    fixed_rounds: int | None = None  # --rerank-rounds N overrides the calibration
    breakdown_rounds: int = 5  # instrumented rounds after the measured ones (trackers/breakdown.py)

    @staticmethod
    def for_device(device: str, fixed_rounds: int | None = None, recording: bool = False) -> RoundsPolicy:
        """Recording a baseline takes more rounds: its samples are the reference for every later comparison. The
        CPU fallback shows the harness working, not GPU figures: 10 rounds and a quarter second per cell (the tiny
        twin's 10-pair calls take ~25 ms: 10 rounds), 3 instrumented ones."""
        scale = 3 if recording else 1
        if dev.is_cuda(device):
            return RoundsPolicy(3, 10 * scale, 1.0 * scale, fixed_rounds=fixed_rounds)
        return RoundsPolicy(2, 10 * scale, 0.25 * scale, fixed_rounds=fixed_rounds, breakdown_rounds=3)

    def rounds_for(self, seconds_per_call: float) -> int:
        if self.fixed_rounds:
            return self.fixed_rounds
        wanted = math.ceil(self.min_time_s / max(seconds_per_call, 1e-9))
        return max(self.min_rounds, min(self.max_rounds, wanted))


def null_fields(reason: str) -> dict[str, Any]:
    """Every registered figure of a cell that did not run, as null (the innermost object of a dotted field), and
    why: a missing figure is never absent or zero."""
    fields: dict[str, Any] = {}
    for m in METRICS:
        if m.scope != "cell":
            continue
        *parents, leaf = m.cell_field.split(".")
        if len(parents) > 1:
            parents, leaf = parents[:-1], parents[-1]
        into = fields
        for part in parents:
            into = into.setdefault(part, {})
        into[leaf] = None
    fields["why_null"] = {"*": reason}
    return fields


@dataclass(frozen=True)
class CellResult:
    """A measured (or OOM, or skipped) cell. ``fields`` holds what the trackers and the runner measured, as the
    cell JSON names them; ``to_dict()`` is that JSON (pytest-benchmark's ``extra_info``, the report's cells)."""

    cell: Cell
    workload_id: str
    status: Status
    rounds: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    fields: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    identity: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pairs_per_s(self) -> float | None:
        return self.fields.get("pairs_per_s")

    @property
    def tokens_per_s(self) -> float | None:
        return self.fields.get("tokens_per_s")

    def to_dict(self) -> dict[str, Any]:
        ident = self.identity
        return {
            "status": self.status,
            "batch_size": self.cell.batch_size,
            "num_pairs": self.cell.num_pairs,
            "workload_id": self.workload_id,
            "variant": self.cell.variant,
            "rounds": self.rounds,
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            **self.fields,
            "device": ident.get("device"),
            "model_id": ident.get("key"),
            "model_source": ident.get("source"),
            "profile_id": ident.get("profile_id"),
            "dtype": ident.get("dtype"),
            "max_length": ident.get("max_length"),
            "reason": self.reason or None,
        }
