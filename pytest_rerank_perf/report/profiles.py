"""The committed hardware profiles at a glance (``rerank-perf profiles``): one row per profile and model identity,
read through the baseline store's strict reader, so a row never shows a figure the gate would refuse to read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..store.reader import read_profile
from ..store.schema import BaselineCell, BaselineProfile, ModelBaseline, cell_sort_key, split_cell_key
from ..tables import Table

HEADER = (
    "profile",
    "hardware",
    "model key",
    "dtype",
    "recorded",
    "torch / transformers / sentence-transformers",
    "best batch size per num_pairs (pairs/s)",
    "peak VRAM",
    "OOM boundaries (max_length: pairs)",
)
# docs/hardware.md holds the Markdown table between these lines; ``--update FILE`` rewrites it there
BEGIN, END = "<!-- rerank-perf profiles: begin -->", "<!-- rerank-perf profiles: end -->"


def profile_files(where: Path) -> list[Path]:
    """The profile files of a baseline folder (or the one file given); what is not one (a lock, a side file of
    unsaved cells, a temp file) is left out."""
    if where.is_file():
        return [where]
    if not where.is_dir():
        raise UsageError(f"{where}: no such folder; pass the folder of baseline profiles, e.g. baselines")
    files = sorted(p for p in where.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise UsageError(f"{where}: holds no baseline profiles (<profile id>.json); pass the baselines folder")
    return files


def _hardware(hw: Mapping[str, Any]) -> str:
    gpu = hw.get("gpu")
    if gpu:
        parts = [str(gpu.get("name", "?")), f"{gpu.get('memory_total_bytes', 0) / 2**30:.1f} GiB"]
        parts += [f"driver {gpu['driver_version']}"] if gpu.get("driver_version") else []
        return ", ".join(parts)
    return f"CPU {hw.get('cpu_model', '?')}, {hw.get('cpu_cores', '?')} cores"


def _versions(software: Mapping[str, str]) -> str:
    return " / ".join(software.get(name, "?") for name in ("torch", "transformers", "sentence-transformers"))


def _best_per_size(cells: Sequence[BaselineCell]) -> str:
    """Per workload (its id ends in -n<pairs>), the cell with the highest median pairs/s: ``n10: bs32 (375.5)``;
    a variant's cell keeps its name (``bs16+token-sorted``). Workloads of several sources are named by source."""
    best: dict[str, BaselineCell] = {}
    for cell in cells:
        if cell.workload_id not in best or cell.throughput.median > best[cell.workload_id].throughput.median:
            best[cell.workload_id] = cell
    sources = {split_cell_key(c.key)[0] for c in best.values()}
    shown = []
    for cell in sorted(best.values(), key=lambda c: cell_sort_key(c.key)):
        source, short = split_cell_key(cell.key)
        size, config = short.split("/", 1)
        label = f"{source.split('-')[0]} {size}" if len(sources) > 1 else size
        shown.append(f"{label}: {config} ({cell.throughput.median:,.1f})")
    return "; ".join(shown) or "-"


def _peak_vram(cells: Sequence[BaselineCell], gpu: bool) -> str:
    """The largest peak VRAM of the section's cells: weights included, so it is what the matrix needed at most."""
    peaks = [v for c in cells if (v := c.values.get("vram")) is not None]
    if peaks:
        return f"{max(peaks) / 2**30:.2f} GiB"
    return "- (not recorded)" if gpu else "- (CPU)"


def _row(profile_id: str, section: ModelBaseline) -> tuple[str, ...]:
    cells = list(section.cells.values())
    gpu = bool(section.hardware.get("gpu"))
    booms = "; ".join(f"{length}: {pairs}" for length, pairs in section.oom_boundaries.items())
    return (
        profile_id,
        _hardware(section.hardware),
        section.identity.get("key", "?"),
        str(section.identity.get("dtype", "?")),
        section.recorded_at[:10],
        _versions(section.software),
        _best_per_size(cells),
        _peak_vram(cells, gpu),
        booms or ("- (not recorded)" if gpu else "- (CPU)"),
    )


def profiles_table(profiles: Sequence[BaselineProfile]) -> Table:
    rows = [_row(p.profile_id, p.models[key]) for p in profiles for key in sorted(p.models)]
    return Table(HEADER, rows, left_columns=len(HEADER))


def read_profiles(where: Path) -> list[BaselineProfile]:
    """Every profile under ``where``, each read strictly (a corrupt file raises with the file, the field and the
    fix)."""
    profiles = []
    for path in profile_files(where):
        profile = read_profile(path)
        if profile is not None:
            profiles.append(profile)
    return profiles


def with_table(page: str, table_markdown: Sequence[str], page_name: str) -> str:
    """``page`` with the lines between BEGIN and END replaced by the table."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise UsageError(f"{page_name}: no {BEGIN} ... {END} lines to put the table between; add them")
    return head + "\n".join([BEGIN, *table_markdown, END]) + tail
