"""Two views of the matrix beyond its per-workload tables: the variants side by side against ``predict``, and
where each cell's call time goes (``trackers/breakdown.py``); and which batch sizes the terminal shows of each.

The terminal is a summary, ``index.md`` the whole report: a table of more than ``TERMINAL_ALL_ROWS`` batch sizes
shows in the terminal only the rows a reader of a CI log needs (``terminal_batches``); its Markdown has them all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..scenarios.cell_choice import PREDICT_DEFAULT_BATCH, TUTORIAL_BATCH
from ..tables import Table
from ..trackers.breakdown import PARTS

CellJson = Mapping[str, Any]
TERMINAL_ALL_ROWS = 4  # a table of this many batch sizes or fewer shows every one in the terminal too


def terminal_batches(cells: Sequence[CellJson], best: Collection[int]) -> set[int]:
    """The batch sizes of a terminal table: every one of a short table; else the best, the two every recommendation
    is compared with (predict's default 32 and the tutorial's 8), and each whose cell did not run or ran on a
    throttled GPU."""
    sizes = {c["batch_size"] for c in cells}
    if len(sizes) <= TERMINAL_ALL_ROWS:
        return sizes
    odd = {c["batch_size"] for c in cells if c["status"] != "ok" or c.get("throttled")}
    return (sizes & {*best, PREDICT_DEFAULT_BATCH, TUTORIAL_BATCH}) | odd


def left_out(cells: Sequence[CellJson], shown: Collection[int]) -> list[str]:
    """The line under a terminal table that left batch sizes out: which, and where they are."""
    hidden = sorted({c["batch_size"] for c in cells} - set(shown))
    return [f"({len(hidden)} more batch sizes in index.md: {', '.join(map(str, hidden))})"] if hidden else []


def _variant(c: CellJson) -> str:
    return c.get("variant") or "predict"


def status_label(c: CellJson) -> str:
    """What a table shows for a cell that did not run."""
    return {"oom": "OOM", "rejected": "WRONG SCORES"}.get(c["status"], "skipped")


def padding(c: CellJson) -> float | None:
    return 1 - c["real_tokens"] / c["padded_tokens"] if c.get("padded_tokens") else None


def _versus(c: CellJson | None, ref: CellJson | None) -> str:
    """``pairs/s (x ratio to predict), padding``: what a variant buys at one (workload, batch size)."""
    if c is None:
        return "-"
    if c["status"] != "ok":
        return status_label(c)
    pad = padding(c)
    shown = f"{c['pairs_per_s']:,.1f}"
    if ref is not None and ref is not c and ref["status"] == "ok":
        shown += f" ({c['pairs_per_s'] / ref['pairs_per_s']:.2f}x)"
    return shown + ("" if pad is None else f", pad {pad:.0%}")


def variant_tables(cells: Sequence[CellJson], shown: Mapping[str, Collection[int]] | None = None) -> list[Table]:
    """Per workload, one row per batch size: each variant's pairs/s, its ratio to predict's, its padding. None when
    the run measured predict alone. ``shown``: the batch sizes to show per workload id (default: all)."""
    variants = list(dict.fromkeys(_variant(c) for c in sorted(cells, key=lambda c: _variant(c) != "predict")))
    if len(variants) < 2:
        return []
    by_workload: dict[str, dict[tuple[int, str], CellJson]] = {}
    for c in sorted(cells, key=lambda c: (c["num_pairs"], c["workload_id"])):
        by_workload.setdefault(c["workload_id"], {})[(c["batch_size"], _variant(c))] = c
    tables = []
    for workload, group in by_workload.items():
        rows = []
        sizes = {bs for bs, _ in group}
        for bs in sorted(sizes if shown is None else sizes & set(shown.get(workload, sizes))):
            ref = group.get((bs, "predict"))
            rows.append((str(bs), *(_versus(group.get((bs, v)), ref) for v in variants)))
        title = f"variants against predict: {workload}  (pairs/s (x predict at the same batch size), padding)"
        tables.append(Table(("batch", *variants), rows, title))
    return tables


def _part(parts: Mapping[str, Any], name: str) -> str:
    part = parts.get(name)
    return "-" if not part else f"{part['median_s'] * 1e3:.2f} ms ({part['share']:.0%})"


def breakdown_table(cells: Sequence[CellJson], title: str = "") -> Table | None:
    """Per measured cell: the instrumented call's median and each part's median (share of the call's mean)."""
    rows = []
    for c in sorted(cells, key=lambda c: (c["num_pairs"], c["workload_id"], c["batch_size"], _variant(c))):
        b = c.get("breakdown") or {}
        if c["status"] != "ok" or not b.get("call_median_s"):
            continue
        vs = b.get("vs_measured")
        check = b.get("why") or ("adds up" if vs is None else f"adds up; {vs:+.1%} vs measured")
        cell = f"n{c['num_pairs']} bs{c['batch_size']} {_variant(c)}"
        parts = b.get("parts") or {}
        rows.append((cell, f"{b['call_median_s'] * 1e3:.2f} ms", *(_part(parts, p) for p in PARTS), check))
    if not rows:
        return None
    title = title or "where a call's time goes (median per part, share of the call; trackers/breakdown.py)"
    return Table(("cell", "call", *PARTS, "check"), rows, title)
