"""Scenario recommendations: each scenario judged on the measured cells or the load benchmark, and on a data
file's own requests (``--rerank-workload``).

A cell measured on a file holds each request's size and latencies (``cell["requests"]``). A scenario is judged on
the requests whose size lies in its range, as a cell of their own: p99 over those requests' latencies, pairs/s
over their pairs and median times. A range the file has no request in is not judged (the file says nothing
about it), and the file's whole traffic is a scenario of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .scenarios import Recommendation, Scenario, recommend_from_cells, recommend_from_load

Cell = Mapping[str, Any]


def _in_range(size: int, low: int, high: int | None) -> bool:
    return size >= low and (high is None or size <= high)


def _judged(cell: Cell, low: int, high: int | None) -> dict[str, Any] | None:
    """The cell as the requests of ``low``-``high`` pairs see it; None when it has none of that size."""
    detail = cell["requests"]
    picked = [(n, s) for n, s in zip(detail["pairs"], detail["seconds"], strict=True) if _in_range(n, low, high)]
    if not picked or not all(s for _, s in picked):
        return None
    seconds = [t for _, s in picked for t in s]
    pairs_per_s = sum(n for n, _ in picked) / sum(float(np.median(s)) for _, s in picked)
    largest = max(n for n, _ in picked)  # the size the recommendation names: the worst case for latency
    return {
        **cell,
        "num_pairs": largest,
        "pairs_per_s": pairs_per_s,
        "latency_s": {"call": {"p99": float(np.percentile(seconds, 99))}},
    }


def judged_cells(low: int, high: int | None, cells: Sequence[Cell]) -> tuple[list[Cell], list[str]]:
    """The cells a scenario of ``low``-``high`` documents per request is judged on, and a note where the data file
    decided. Without data-file cells: the cells as they are."""
    from_file = [c for c in cells if c.get("status") == "ok" and c.get("requests")]
    if not from_file:
        return list(cells), []
    judged: list[Cell] = [j for c in from_file if (j := _judged(c, low, high)) is not None]
    sizes = sorted({n for c in from_file for n in c["requests"]["pairs"]})
    workloads = ", ".join(sorted({c["workload_id"] for c in from_file}))
    if not judged:
        span = f"{low}+" if high is None else f"{low}-{high}"
        return [], [f"{workloads} has no request of {span} documents (its requests hold {sizes[0]}-{sizes[-1]})"]
    count = sum(_in_range(n, low, high) for n in from_file[0]["requests"]["pairs"])
    return judged, [f"judged on the {count} requests of {workloads} in this range (per-request p99)"]


def data_range(cells: Sequence[Cell]) -> tuple[int, int, int] | None:
    """(smallest, largest, count) of a data file's requests, for the scenario of the file's own traffic."""
    sizes = [n for c in cells if c.get("status") == "ok" and c.get("requests") for n in c["requests"]["pairs"]]
    if not sizes:
        return None
    first = next(c for c in cells if c.get("status") == "ok" and c.get("requests"))
    return min(sizes), max(sizes), len(first["requests"]["pairs"])


def recommend(
    scenarios: Sequence[Scenario],
    cells: Sequence[Mapping[str, Any]],
    max_length: int | None,
    load: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Recommendation]:
    """One recommendation per scenario; ``load`` maps a concurrent scenario's name to its load results. With a data
    file's cells, scenarios are judged on its requests of their size, and the file's traffic is one more."""
    found = data_range(cells)
    if found:
        low, high, count = found
        own = Scenario("data", low, high, None, description=f"your data: the file's {count} requests as they come")
        scenarios = [*scenarios, own]
    out = []
    for s in scenarios:
        if s.concurrent:
            rec = recommend_from_load(s, (load or {}).get(s.name))
            if found and rec.batch_size is not None:  # the load benchmark replays seeded requests, not the file's
                rec = replace(
                    rec, notes=(*rec.notes, f"judged on seeded requests of {s.pairs_text} pairs, not the file's")
                )
        else:
            judged, notes = judged_cells(s.min_pairs, s.max_pairs, cells)
            rec = recommend_from_cells(s, judged, max_length)
            rec = replace(rec, notes=(*notes, *rec.notes))
        out.append(replace(rec, pairs=s.pairs_text))
    return out
