"""The matrix procedure's result: every cell as JSON, the best batch size per input size, and its tables."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..tables import Table
from ..trackers.metrics import METRICS, Metric
from .matrix_views import breakdown_table, left_out, status_label, terminal_batches, variant_tables

CellJson = Mapping[str, Any]
COLUMNS: tuple[Metric, ...] = tuple(m for m in METRICS if m.column and m.scope == "cell")


def group_of(c: CellJson) -> str:
    """What a table holds: a workload id (its num_pairs included), ``+<variant>`` for a variant's cells."""
    variant = c.get("variant") or "predict"
    return c["workload_id"] + ("" if variant == "predict" else f"+{variant}")


def best_batch_sizes(cells: Iterable[CellJson]) -> dict[str, int]:
    """Per workload (its id names its num_pairs) and variant, the batch size with the highest measured throughput
    (ties: the smaller batch)."""
    best: dict[str, CellJson] = {}
    for c in cells:
        if c["status"] != "ok" or c.get("pairs_per_s") is None:
            continue
        cur = best.get(group_of(c))
        if cur is None or (c["pairs_per_s"], -c["batch_size"]) > (cur["pairs_per_s"], -cur["batch_size"]):
            best[group_of(c)] = c
    return {w: c["batch_size"] for w, c in best.items()}


def _row(c: CellJson, best: bool, columns: Sequence[Metric]) -> tuple[str, ...]:
    batch = f"{c['batch_size']}{' *' if best else ''}{' !' if c.get('throttled') else ''}"
    if c["status"] != "ok":
        return (batch, status_label(c), *[""] * len(columns), c.get("reason") or "")
    if c.get("pairs_per_s") is None or (c.get("latency_s") or {}).get("call") is None:
        raise ValueError(f"cell {c['workload_id']}/bs{c['batch_size']} is ok but has no throughput")
    pad = 1 - c["real_tokens"] / c["padded_tokens"] if c.get("padded_tokens") else 0.0
    figures = []
    for m in columns:
        value = m.read(c)
        figures.append("-" if value is None else m.fmt(value))
    return (batch, *figures, f"{pad * 100:.0f}%", str(c["rounds"]))


def _workloads(cells: Sequence[CellJson]) -> list[tuple[str, list[CellJson]]]:
    """Cells by workload id and variant, in (num_pairs, id) order: two workloads of one size are two tables."""
    groups: dict[str, list[CellJson]] = {}
    for c in sorted(cells, key=lambda c: (c["num_pairs"], group_of(c), c["batch_size"])):
        groups.setdefault(group_of(c), []).append(c)
    return list(groups.items())


def _title(workload: str, group: Sequence[CellJson]) -> str:
    n = group[0]["num_pairs"]
    flags = "(* = best batch size" + (
        "; ! = measured on a throttled GPU)" if any(c.get("throttled") for c in group) else ")"
    )
    variant = group[0].get("variant") or "predict"
    named = workload.removesuffix(f"+{variant}")
    return f"num_pairs={n}  workload={named}  variant={variant}  {flags}"


def _label(m: Metric, group: Sequence[CellJson]) -> str:
    """A data file's round makes many predict calls: its call latency is a round's, said so beside the per-request
    columns."""
    several = m.cell_field.startswith("latency_s.call") and any(c.get("requests") for c in group)
    return f"round {m.label}" if several else m.label


def _matrix_table(workload: str, group: Sequence[CellJson], best: int | None, shown: Collection[int]) -> Table:
    columns = [m for m in COLUMNS if m.column is True or any(m.read(c) is not None for c in group)]
    header = ("batch", *(_label(m, group) for m in columns), "padding", "rounds")
    rows = [
        _row(c, best == c["batch_size"] and c["status"] == "ok", columns) for c in group if c["batch_size"] in shown
    ]
    return Table(header, rows, _title(workload, group))


def matrix_tables(cells: Sequence[CellJson]) -> list[Table]:
    """One table per workload (seeded recipe or data file, and num_pairs), rows by batch size, the best marked."""
    best = best_batch_sizes(cells)
    return [
        _matrix_table(workload, group, best.get(workload), {c["batch_size"] for c in group})
        for workload, group in _workloads(cells)
    ]


def format_matrix(cells: Sequence[CellJson]) -> list[str]:
    """Lines of the terminal summary: one table per workload, each with the batch sizes that matter in a CI log
    (``terminal_batches``; index.md has every row); the variants side by side on the same rows; where the time
    goes at each best batch size."""
    best = best_batch_sizes(cells)
    lines: list[str] = []
    for workload, group in _workloads(cells):
        shown = terminal_batches(group, [best[workload]] if workload in best else [])
        lines += [*_matrix_table(workload, group, best.get(workload), shown).text(), *left_out(group, shown), ""]
    by_workload: dict[str, list[CellJson]] = {}
    for c in cells:
        by_workload.setdefault(c["workload_id"], []).append(c)
    rows = {
        w: terminal_batches(group, [b for g, b in best.items() if g == w or g.startswith(f"{w}+")])
        for w, group in by_workload.items()
    }
    for table in variant_tables(cells, rows):
        lines += [*table.text(), ""]
    at_best = [c for c in cells if best.get(group_of(c)) == c["batch_size"]]
    title = (
        "where a call's time goes at each best batch size (median per part, share of the call; every cell: index.md)"
    )
    breakdown = breakdown_table(at_best, title) if len(at_best) < len(cells) else breakdown_table(cells)
    return lines + ([*breakdown.text(), ""] if breakdown else [])


@dataclass
class MatrixResult:
    key: ClassVar[str] = "matrix"
    cells: list[dict[str, Any]] = field(default_factory=list)

    def report_fields(self) -> dict[str, Any]:
        best = best_batch_sizes(self.cells)
        return {"cells": self.cells, "best_batch_size": best}

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"cells": [], "best_batch_size": {}}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> MatrixResult | None:
        cells = data.get("cells")
        return cls([dict(c) for c in cells]) if cells else None

    def merge(self, other: MatrixResult) -> MatrixResult:
        return MatrixResult(self.cells + other.cells)

    def summary_lines(self) -> list[str]:
        return format_matrix(self.cells)

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        out = ["", "## Throughput matrix", ""]
        out += [f"![{t}]({f})" for f, t in plots.items() if f in ("throughput.png", "vram.png")]
        if "vram.png" not in plots:
            out += ["", "_No VRAM plot: peak VRAM is a GPU figure._"]
        out += [f"![{t}]({f})" for f, t in plots.items() if f in {f"{m.name}.png" for m in METRICS if m.plot}]
        for table in [*matrix_tables(self.cells), *variant_tables(self.cells)]:
            out += ["", *table.markdown()]
        breakdown = breakdown_table(self.cells)
        if breakdown:
            out += ["", "## Where the time goes", ""]
            out += [f"![{t}]({f})" for f, t in plots.items() if f == "breakdown.png"]
            out += ["", *breakdown.markdown()]
        return out
