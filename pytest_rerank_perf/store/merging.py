"""How a recording joins a stored profile, whatever the store: clashes, force, and pooling another process."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from .reader import BaselineError
from .schema import BaselineProfile, ModelBaseline


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


def pool_processes(section: ModelBaseline, others: Sequence[ModelBaseline]) -> ModelBaseline:
    """This process's section with other processes' measurements of the same cells pooled in (``--rerank-processes``).
    A cell another process could not measure keeps this process's figures alone (its ``runs`` says how many)."""
    cells = dict(section.cells)
    for other in others:
        cells = {key: cell.pooled(other.cells[key]) if key in other.cells else cell for key, cell in cells.items()}
    return replace(section, cells=cells)
