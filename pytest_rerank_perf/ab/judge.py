"""K pairs of processes' reports turned into one ``ABResult``: fail closed at every gap.

What a side's process left is read as a plain report (``ChildRun``): its measured section, every planned cell's
status, its model key and package versions. Only the fields a report has carried across versions are read, so an
older commit's report reads too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RerankPerfError
from ..gate.judge import throttled_cells
from ..gate.thresholds import GateSettings
from ..store.reader import parse_section
from ..store.schema import ModelBaseline, cell_sort_key, key_of
from ..trackers.metrics import CELL_GATED
from .paired import compare_pairs, compare_values
from .result import ABResult, MissingCell


@dataclass(frozen=True)
class ChildRun:
    """What one process of one side measured."""

    section: ModelBaseline | None
    statuses: dict[str, str] = field(default_factory=dict)  # cell key -> ok | oom | skipped | ...
    model_key: str = ""
    software: dict[str, str] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # the run identity the report names


def read_child(path: Path) -> ChildRun:
    """A side's ``report.json``; a report that cannot be read is that side's failure."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        section = parse_section(data["section"], path, "section", "") if data.get("section") else None
        cells = data.get("cells") or []
        hot = throttled_cells(cells)  # not a clean measurement: not compared, as the gate does not compare it
        statuses = {key_of(c): "throttled" if key_of(c) in hot else str(c.get("status")) for c in cells}
        model = data.get("model") or {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RerankPerfError) as exc:
        raise RerankPerfError(f"{path}: not a readable rerank-perf report ({exc})") from None
    software = dict(section.software) if section else {}
    return ChildRun(section, statuses, str(model.get("key") or ""), software, dict(model))


def _status(run: ChildRun, cell: str) -> str:
    if run.statuses.get(cell) == "throttled":
        return "throttled"
    if run.section is not None and cell in run.section.cells:
        return "ok"
    return run.statuses.get(cell, "absent")


def judge(
    result: ABResult, pairs: Sequence[tuple[ChildRun, ChildRun]], settings: GateSettings, planned: int = 0
) -> ABResult:
    """``result`` (the sides, the plan) completed with the comparisons of ``pairs`` (base run, head run), judged
    with ``settings`` (``settings_for``). ``planned``: how many cells each process was to measure; fewer cells
    reported by the sides is a gap, not a smaller pass."""
    if not pairs:
        result.failure = result.failure or "no pair of processes completed"
        return result
    keys = {run.model_key for pair in pairs for run in pair}
    if len(keys) != 1:
        result.failure = f"the sides measured different models ({', '.join(sorted(keys))}): nothing to compare"
        return result
    result.model_key = keys.pop()
    result.model = pairs[0][0].model
    result.base["software"] = pairs[0][0].software
    result.head["software"] = pairs[0][1].software
    cells = sorted({c for pair in pairs for run in pair for c in run.statuses} | _measured(pairs), key=cell_sort_key)
    if len(cells) < planned:
        result.failure = f"{planned} cells planned, the sides' processes reported {len(cells)}"
    for cell in cells:
        base_status = _worst(_status(b, cell) for b, _ in pairs)
        head_status = _worst(_status(h, cell) for _, h in pairs)
        if base_status != "ok" or head_status != "ok":
            if base_status != head_status or base_status != "oom":  # out of memory on both sides: the same
                result.missing.append(MissingCell(cell, base_status, head_status))
            continue
        base_cells = [b.section.cells[cell] for b, _ in pairs if b.section]
        head_cells = [h.section.cells[cell] for _, h in pairs if h.section]
        for m in CELL_GATED:
            if not settings.judges(m.name):
                continue
            if m.kind == "samples":
                base_rounds = [c.samples[m.name].samples for c in base_cells if m.name in c.samples]
                head_rounds = [c.samples[m.name].samples for c in head_cells if m.name in c.samples]
                if _complete(result, cell, m.name, len(base_rounds), len(head_rounds), len(pairs)):
                    limit = settings.threshold(cell, m.name)
                    result.comparisons.append(
                        compare_pairs(cell, m.name, base_rounds, head_rounds, limit, settings.alpha)
                    )
                continue
            base_values = [v for c in base_cells if (v := c.values.get(m.name))]
            head_values = [v for c in head_cells if (v := c.values.get(m.name))]
            if _complete(result, cell, m.name, len(base_values), len(head_values), len(pairs)):
                limit = settings.threshold(cell, m.name)
                result.comparisons.append(compare_values(cell, m.name, base_values, head_values, limit))
    return result


def _complete(result: ABResult, cell: str, name: str, base: int, head: int, pairs: int) -> bool:
    """Every process of both sides has the metric: compare it. None has it (energy on a CPU): nothing to compare.
    Some have it: a gap, recorded as such (fail closed), not a comparison quietly dropped."""
    if base == head == pairs:
        return True
    if base or head:
        result.missing.append(
            MissingCell(f"{cell} {name}", f"in {base} of {pairs} processes", f"in {head} of {pairs} processes")
        )
    return False


def _measured(pairs: Sequence[tuple[ChildRun, ChildRun]]) -> set[str]:
    return {c for pair in pairs for run in pair if run.section for c in run.section.cells}


def _worst(statuses: Any) -> str:
    """One side's status of a cell over its processes: ok only when every process measured it."""
    seen = set(statuses)
    if seen == {"ok"}:
        return "ok"
    others = ", ".join(sorted(seen - {"ok"}))
    return f"ok in some processes, {others} in others" if "ok" in seen else others


def settings_for(device_kind: str, rules: Sequence[Any], alpha: float, threshold: float) -> GateSettings:
    """The gate's settings for this device, every timed metric at the A/B's threshold: the gate's own threshold
    rules (``--rerank-threshold``) keep applying to the other metrics only."""
    timed = {m.name for m in CELL_GATED if m.kind == "samples"}
    base = GateSettings.for_device(device_kind, [r for r in rules if r.metric not in timed], alpha)
    defaults: Mapping[str, float] = {k: threshold if k in timed else v for k, v in base.defaults.items()}
    return GateSettings(dict(defaults), base.rules, alpha, base.assumed_drift)
