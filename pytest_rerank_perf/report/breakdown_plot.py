"""The stacked plot of where each cell's call time goes: tokenization, host-to-device, forward, the rest."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..trackers.breakdown import PARTS
from .figure import Plot, pyplot, save, subject, wrap_title

_COLOURS = {"tokenize": "#f9a825", "h2d": "#8e24aa", "forward": "#1565c0", "rest": "#9e9e9e"}


def plot_breakdown(data: Mapping[str, Any], out_dir: Path) -> Plot | None:
    """One bar per broken-down cell, each part's share of the call stacked to 100%, the call's median on top (cells
    differ by orders of magnitude: shares keep every part visible on a linear axis)."""
    cells = [
        c
        for c in data.get("cells") or []
        if c["status"] == "ok" and ((c.get("breakdown") or {}).get("parts") or {}).get("forward")
    ]
    if not cells:
        return None
    cells.sort(key=lambda c: (c["num_pairs"], c["workload_id"], c.get("variant") or "", c["batch_size"]))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(8.0, 0.45 * len(cells)), 5))
    labels = [
        f"n{c['num_pairs']} bs{c['batch_size']}"
        + ("" if c.get("variant") in (None, "predict") else f"\n{c['variant']}")
        for c in cells
    ]
    bottom = [0.0] * len(cells)
    for part in PARTS:
        heights = [max(c["breakdown"]["parts"][part]["share"], 0.0) * 100 for c in cells]  # rest: never below 0
        ax.bar(range(len(cells)), heights, bottom=bottom, label=part, color=_COLOURS[part])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for x, c in enumerate(cells):
        ax.text(x, 101, f"{c['breakdown']['call_median_s'] * 1e3:.3g} ms", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel("share of the call (%); the call's median above each bar")
    ax.set_ylim(0, 112)
    ax.set_title(wrap_title(f"Where a call's time goes, per cell\n{subject(data)}"), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return Plot(save(fig, out_dir, "breakdown.png"), "Where a call's time goes")
