"""Scenario recommendations: each scenario judged on the measured cells or the load benchmark, and on a data
file's own requests (``--rerank-workload``).

A cell measured on a requests file holds each request's size and median latency (``cell["requests"]``). A
scenario is judged on the requests whose size lies in its range, as a cell of their own: p99 over those requests'
latencies, pairs/s over their pairs and times. A range the file has no request in is not judged (the file says
nothing about it), and the file's whole traffic is a scenario of its own (``data``). Chunks of a flat file are
judged like seeded cells, on the p99 of one predict call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from . import Recommendation, Scenario, recommend_from_load
from .cell_choice import recommend_from_cells

Cell = Mapping[str, Any]


def _in_range(size: int, low: int, high: int | None) -> bool:
    return size >= low and (high is None or size <= high)


def _kind(cell: Cell) -> str | None:
    """``requests`` for a cell of a requests file, ``pairs`` for chunks of a flat file, None otherwise."""
    return (cell.get("requests") or {}).get("kind") if cell.get("status") == "ok" else None


def _judged(cell: Cell, low: int, high: int | None) -> dict[str, Any] | None:
    """A requests cell as its requests of ``low``-``high`` pairs see it; None when it has none of that size."""
    detail = cell["requests"]
    picked = [(n, t) for n, t in zip(detail["pairs"], detail["median_s"], strict=True) if _in_range(n, low, high)]
    if not picked:
        return None
    return {
        **cell,
        "num_pairs": max(n for n, _ in picked),  # the size the recommendation names: the worst case for latency
        "pairs_per_s": sum(n for n, _ in picked) / sum(t for _, t in picked),
        "latency_s": {"call": {"p99": float(np.percentile([t for _, t in picked], 99))}},
    }


def _per_call(cell: Cell) -> Cell:
    """A chunks cell judged per predict call (its round makes many): the p99 of one call of num_pairs pairs."""
    if _kind(cell) != "pairs":
        return cell
    return {**cell, "latency_s": {"call": {"p99": cell["latency_s"]["request"]["p99"]}}}


def judged_cells(low: int, high: int | None, cells: Sequence[Cell]) -> tuple[list[Cell], list[str]]:
    """The cells a scenario of ``low``-``high`` documents per request is judged on, and notes where a requests file
    decided: its requests of that size, p99 over their median latencies."""
    from_file = [c for c in cells if _kind(c) == "requests"]
    if not from_file:
        return [_per_call(c) for c in cells], []
    judged: list[Cell] = [j for c in from_file if (j := _judged(c, low, high)) is not None]
    sizes = sorted({n for c in from_file for n in c["requests"]["pairs"]})
    workloads = ", ".join(sorted({c["workload_id"] for c in from_file}))
    span = f"{low}+" if high is None else f"{low}-{high}"
    if not judged:
        return [], [f"{workloads} has no request of {span} documents (its requests hold {sizes[0]}-{sizes[-1]})"]
    count = sum(_in_range(n, low, high) for n in from_file[0]["requests"]["pairs"])
    notes = [f"judged on the {count} requests of {span} documents in {workloads} (p99 over their latencies)"]
    if any(c.get("peak_vram_allocated_bytes") for c in from_file):
        notes.append("VRAM is the peak over the whole file")
    return judged, notes


def data_scenario(cells: Sequence[Cell], scenarios: Sequence[Scenario]) -> Scenario | None:
    """The scenario of a requests file's own traffic, every request as it comes: ``data`` (limits from an ini
    scenario of that name, if any; its range is always the file's)."""
    sizes = [n for c in cells if _kind(c) == "requests" for n in c["requests"]["pairs"]]
    if not sizes:
        return None
    count = len(next(c for c in cells if _kind(c) == "requests")["requests"]["pairs"])
    given = next((s for s in scenarios if s.name == "data"), None)
    described = f"your data: the file's {count} requests as they come"
    base = given or Scenario("data", 1, None, None)
    return replace(base, min_pairs=min(sizes), max_pairs=max(sizes), concurrent=False, description=described)


def recommend(
    scenarios: Sequence[Scenario],
    cells: Sequence[Mapping[str, Any]],
    max_length: int | None,
    load: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Recommendation]:
    """One recommendation per scenario; ``load`` maps a concurrent scenario's name to its load results. With a data
    file's cells, scenarios are judged on its requests of their size, and the file's traffic is one more."""
    own = data_scenario(cells, scenarios)
    if own is not None:
        scenarios = [*(s for s in scenarios if s.name != own.name), own]
    out = []
    for s in scenarios:
        if s.concurrent:
            rec = recommend_from_load(s, (load or {}).get(s.name))
            if own is not None and rec.batch_size is not None:  # the load benchmark replays seeded requests
                rec = replace(rec, notes=(*rec.notes, f"judged on seeded requests of {s.pairs_text}, not the file's"))
        else:
            judged, notes = judged_cells(s.min_pairs, s.max_pairs, cells)
            rec = recommend_from_cells(s, judged, max_length)
            rec = replace(rec, notes=(*notes, *rec.notes))
        out.append(replace(rec, pairs=s.pairs_text))
    return out
