"""A scenario's choice among measured cells: the (variant, batch size) with the highest worst-case pairs/s whose
cells all meet the scenario's limits, with its ratio to ``predict`` at the library default (batch 32) and at the
seed tutorial's batch 8, both measured in the same run on the same sizes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import Recommendation, Scenario

PREDICT_DEFAULT_BATCH = 32  # CrossEncoder.predict's own default
TUTORIAL_BATCH = 8  # the seed tutorial's advice
REFERENCE = "predict"
Cell = Mapping[str, Any]


@dataclass(frozen=True)
class Option:
    """One (variant, batch size) judged over the scenario's sizes: its worst cases."""

    variant: str
    batch_size: int
    pairs_per_s: float
    p99_s: float
    vram_bytes: int | None

    @property
    def name(self) -> str:
        return f"{self.variant}(bs={self.batch_size})"


def _vram(cell: Cell) -> int | None:
    """The process's peak as NVML saw it where sampled (it includes the CUDA context), else torch's reserved."""
    return cell.get("nvml_peak_process_bytes") or cell.get("peak_vram_reserved_bytes")


def _p99(cell: Cell) -> float:
    return float(((cell.get("latency_s") or {}).get("call") or {}).get("p99", math.inf))


def _judged_sizes(scenario: Scenario, measured: Sequence[int]) -> tuple[list[int], list[str]]:
    inside = [
        n for n in measured if n >= scenario.min_pairs and (scenario.max_pairs is None or n <= scenario.max_pairs)
    ]
    if inside:
        return inside, []
    above = [n for n in measured if n >= scenario.request_pairs]
    if above:
        n = min(above)
        return [n], [f"no cell measured {scenario.pairs_text} pairs; judged on {n} pairs per call (a harder case)"]
    n = max(measured)
    return [n], [f"no cell measured {scenario.pairs_text} pairs; judged on {n} pairs per call (an easier case)"]


def _options(ok: Sequence[Cell], sizes: Sequence[int]) -> tuple[list[Option], list[str]]:
    """Every (variant, batch size) measured at every judged size, as an ``Option``; what was not, said."""
    groups: dict[tuple[str, int], list[Cell]] = {}
    for c in ok:
        if int(c["num_pairs"]) in sizes:
            groups.setdefault((c.get("variant") or REFERENCE, int(c["batch_size"])), []).append(c)
    options, missing = [], []
    for (variant, bs), group in sorted(groups.items()):
        if len(group) < len(sizes):
            missing.append(f"{variant}(bs={bs}): not measured at every size")
            continue
        vrams = [v for v in (_vram(c) for c in group) if v]
        worst = min(float(c["pairs_per_s"]) for c in group)
        options.append(Option(variant, bs, worst, max(_p99(c) for c in group), max(vrams) if vrams else None))
    return options, missing


def _rejection(scenario: Scenario, o: Option) -> str | None:
    if scenario.p99_s is not None and o.p99_s > scenario.p99_s:
        return f"{o.name}: p99 {o.p99_s * 1e3:.1f} ms > {scenario.p99_s * 1e3:.0f} ms"
    if scenario.vram_bytes is not None and o.vram_bytes is not None and o.vram_bytes > scenario.vram_bytes:
        return f"{o.name}: VRAM {o.vram_bytes / 2**30:.2f} GiB > {scenario.vram_bytes / 2**30:.2f} GiB"
    return None


def _margin(scenario: Scenario, best: Option, feasible: Sequence[Option]) -> list[str]:
    margin = []
    if scenario.p99_s is not None:
        headroom = 1 - best.p99_s / scenario.p99_s
        margin.append(f"p99 {best.p99_s * 1e3:.1f} ms of {scenario.p99_s * 1e3:.0f} ms ({headroom:.0%} headroom)")
    elif math.isfinite(best.p99_s):  # no SLO to hold it against: still say what the choice costs
        margin.append(f"p99 {best.p99_s * 1e3:.1f} ms")
    if scenario.vram_bytes is not None and best.vram_bytes is not None:
        margin.append(f"VRAM {best.vram_bytes / 2**30:.2f} of {scenario.vram_bytes / 2**30:.2f} GiB")
    if len(feasible) > 1:
        runner = feasible[1]
        margin.append(f"{best.pairs_per_s / runner.pairs_per_s - 1:+.1%} pairs/s over the next best ({runner.name})")
    return margin


def _ratio(best: Option, options: Sequence[Option], batch_size: int) -> tuple[float | None, str | None]:
    """best / predict(bs=batch_size), or why there is none: the reference must be measured in this run."""
    ref = next((o for o in options if o.variant == REFERENCE and o.batch_size == batch_size), None)
    if ref is None:
        return None, f"predict(bs={batch_size}) was not measured at these sizes in this run: no ratio to it"
    return best.pairs_per_s / ref.pairs_per_s, None


def recommend_from_cells(scenario: Scenario, cells: Sequence[Cell], max_length: int | None) -> Recommendation:
    """The best (variant, batch size) for a scenario over cells that ran (rejected variants never did)."""
    wrong = sorted({c.get("variant") or REFERENCE for c in cells if c.get("status") == "rejected"})
    ok = [c for c in cells if c.get("status") == "ok" and c.get("pairs_per_s") and c.get("variant") not in wrong]
    if not ok:
        return Recommendation(scenario.name, scenario.description, None, notes=("no measured cells",))
    sizes, notes = _judged_sizes(scenario, sorted({int(c["num_pairs"]) for c in ok}))
    notes += [f"{v} not considered: its scores differ from predict's in this run" for v in wrong]
    options, rejected = _options(ok, sizes)
    feasible = [o for o in options if _rejection(scenario, o) is None]
    rejected += [why for o in options if (why := _rejection(scenario, o))]
    if scenario.vram_bytes is not None and not any(_vram(c) for c in ok):
        notes.append("no VRAM figure here (CPU): the VRAM cap was not checked")
    if not feasible:
        why = "no configuration meets the limits: " + "; ".join(rejected)
        return Recommendation(
            scenario.name,
            scenario.description,
            None,
            max_length=max_length,
            judged_on=tuple(sizes),
            notes=(*notes, why),
        )
    feasible.sort(key=lambda o: (-o.pairs_per_s, o.variant != REFERENCE, o.batch_size))
    best = feasible[0]
    margin = _margin(scenario, best, feasible)
    ratios = {}
    for bs in (PREDICT_DEFAULT_BATCH, TUTORIAL_BATCH):
        ratios[bs], missing = _ratio(best, options, bs)
        if missing:
            notes.append(missing)
        elif (best.variant, best.batch_size) != (REFERENCE, bs):
            margin.append(f"{ratios[bs]:.2f}x predict(bs={bs})")
    return Recommendation(
        scenario.name,
        scenario.description,
        best.batch_size,
        variant=best.variant,
        vs_predict_bs32=ratios[PREDICT_DEFAULT_BATCH],
        vs_predict_bs8=ratios[TUTORIAL_BATCH],
        max_length=max_length,
        judged_on=tuple(sizes),
        pairs_per_s=best.pairs_per_s,
        p99_s=best.p99_s,
        vram_bytes=best.vram_bytes,
        margin="; ".join(margin),
        notes=tuple(notes),
    )
