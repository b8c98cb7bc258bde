"""The gate's verdict on a run: its status, every comparison, and every planned cell it could not compare.

Statuses, worst first: ``fail`` (a regression, or a cell the baseline measured that now ran out of memory or was
skipped), ``incomplete`` (a comparison that should have been made was not: nothing compared, a throttled GPU, a
different machine), ``pass``, ``no-baseline``. A run is a **full comparison** only when it passed, every planned
cell was compared, and every baseline cell was planned; ``--rerank-require-baseline`` asks for exactly that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..store.schema import cell_sort_key
from .compare import MetricComparison

Status = Literal["pass", "fail", "incomplete", "no-baseline"]
ORDER: tuple[Status, ...] = ("fail", "incomplete", "pass", "no-baseline")


@dataclass(frozen=True)
class LostCell:
    """A cell the baseline measured that this run planned but could not measure: a regression."""

    cell: str
    status: str  # oom | skipped | ...
    reason: str

    def describe(self) -> str:
        return f"{self.cell}: {self.status.upper()} now ({self.reason}), measured in the baseline"


def _sorted(cells: set[str]) -> tuple[str, ...]:
    return tuple(sorted(cells, key=cell_sort_key))


@dataclass(frozen=True)
class GateReport:
    status: Status
    baseline_path: str
    model_key: str
    comparisons: tuple[MetricComparison, ...] = ()
    new_cells: tuple[str, ...] = ()  # planned and measured now; the baseline does not have them (all, without one)
    vanished: tuple[str, ...] = ()  # in the baseline; not planned in this run
    lost: tuple[LostCell, ...] = ()
    planned: tuple[str, ...] = ()  # every cell this run planned (xdist: this worker's)
    warnings: tuple[str, ...] = ()
    message: str = ""
    drift: str = ""  # how the between-process drift was known (measured or assumed)

    @property
    def regressions(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.verdict == "regression"]

    @property
    def improvements(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.verdict == "improvement"]

    @property
    def full(self) -> bool:
        """Passed, and compared every planned cell against a baseline that holds exactly the planned cells."""
        return self.status == "pass" and not (self.new_cells or self.vanished or self.lost)

    def shortfall(self) -> str:
        """Why this is not a full comparison (empty when it is)."""
        if self.full:
            return ""
        parts = [] if self.status == "pass" else [f"the gate is {self.status.upper()} ({self.message})"]
        if self.new_cells:
            parts.append(f"{len(self.new_cells)} planned cell(s) not in the baseline")
        if self.vanished:
            parts.append(f"{len(self.vanished)} baseline cell(s) not planned in this run")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "full_comparison": self.full,
            "baseline_path": self.baseline_path,
            "model_key": self.model_key,
            "message": self.message,
            "drift": self.drift,
            "regressions": len(self.regressions) + len(self.lost),
            "improvements": len(self.improvements),
            "warnings": list(self.warnings),
            "new_cells": list(self.new_cells),
            "vanished_cells": list(self.vanished),
            "lost_cells": [asdict(c) for c in self.lost],
            "planned_cells": list(self.planned),
            "comparisons": [c.to_dict() for c in self.comparisons],
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> GateReport:
        """The inverse of ``to_dict``, for a saved report."""
        return GateReport(
            status=data["status"],
            baseline_path=data["baseline_path"],
            model_key=data["model_key"],
            comparisons=tuple(MetricComparison.from_dict(c) for c in data["comparisons"]),
            new_cells=tuple(data.get("new_cells") or ()),
            vanished=tuple(data.get("vanished_cells") or ()),
            lost=tuple(LostCell(**c) for c in data.get("lost_cells") or ()),
            planned=tuple(data.get("planned_cells") or ()),
            warnings=tuple(data["warnings"]),
            message=data["message"],
            drift=data.get("drift", ""),
        )

    def merge(self, other: GateReport) -> GateReport:
        """Two workers' verdicts (each against its own GPU's baseline) as one: it fails if either failed. A cell
        one worker did not plan but the other did has not vanished."""
        statuses = {self.status, other.status}
        planned = {*self.planned, *other.planned}
        status = next(s for s in ORDER if s in statuses)
        if status == "pass" and "no-baseline" in statuses:  # one worker compared nothing: no full pass
            status = "incomplete"
        return GateReport(
            status=status,
            baseline_path=", ".join(sorted({*self.baseline_path.split(", "), *other.baseline_path.split(", ")})),
            model_key=self.model_key,
            comparisons=self.comparisons + other.comparisons,
            new_cells=_sorted({*self.new_cells, *other.new_cells}),
            vanished=_sorted({*self.vanished, *other.vanished} - planned),
            lost=self.lost + other.lost,
            planned=_sorted(planned),
            warnings=tuple(sorted({*self.warnings, *other.warnings})),
            message=f"{self.message} | {other.message}",
            drift=" | ".join(sorted({self.drift, other.drift} - {""})),
        )
