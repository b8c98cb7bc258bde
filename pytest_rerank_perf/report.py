"""Terminal tables: one per number of pairs, best batch size marked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .measure import CellResult

_HEADER = ("batch", "pairs/s", "tokens/s", "p50 ms", "p99 ms", "peak VRAM", "MFU", "padding", "rounds")


def best_batch_sizes(results: Iterable[CellResult]) -> dict[int, int]:
    """Per num_pairs, the batch size with the highest measured throughput (ties: the smaller batch)."""
    best: dict[int, CellResult] = {}
    for r in results:
        if r.status != "ok" or r.pairs_per_s is None:
            continue
        cur = best.get(r.cell.num_pairs)
        if cur is None or (r.pairs_per_s, -r.cell.batch_size) > (cur.pairs_per_s or 0.0, -cur.cell.batch_size):
            best[r.cell.num_pairs] = r
    return {n: r.cell.batch_size for n, r in best.items()}


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def _row(r: CellResult, best: bool) -> tuple[str, ...]:
    batch = f"{r.cell.batch_size}{' *' if best else ''}"
    if r.status != "ok":
        label = "OOM" if r.status == "oom" else "skipped"
        return (batch, label, "", "", "", "", "", "", r.reason)
    if r.latency_call is None or r.pairs_per_s is None or r.tokens_per_s is None:
        raise ValueError(f"cell {r.cell.id} is ok but has no throughput")
    pad = 1 - r.real_tokens / r.padded_tokens if r.padded_tokens else 0.0
    return (
        batch,
        f"{r.pairs_per_s:,.1f}",
        f"{r.tokens_per_s:,.0f}",
        f"{r.latency_call.median * 1e3:.2f}",
        f"{r.latency_call.p99 * 1e3:.2f}",
        _gib(r.memory.peak_allocated_bytes if r.memory else None),
        "-" if r.mfu is None else f"{r.mfu * 100:.1f}%",
        f"{pad * 100:.0f}%",
        str(r.rounds),
    )


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for k, row in enumerate(rows):
        out.append(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def format_matrix(results: Sequence[CellResult]) -> list[str]:
    """Lines of the summary: one table per (workload, num_pairs), rows by batch size."""
    best = best_batch_sizes(results)
    lines: list[str] = []
    for n in sorted({r.cell.num_pairs for r in results}):
        cells = sorted((r for r in results if r.cell.num_pairs == n), key=lambda r: r.cell.batch_size)
        workloads = sorted({r.workload_id for r in cells})
        lines.append(f"num_pairs={n}  workload={', '.join(workloads)}  (* = best batch size)")
        lines += _table([_HEADER, *(_row(r, best.get(n) == r.cell.batch_size and r.status == "ok") for r in cells)])
        lines.append("")
    return lines
