"""``ab.png``: head against base per cell and timed metric: each pair's ratio, their geometric mean and its 95% CI,
the threshold."""

from __future__ import annotations

from pathlib import Path

from ..store.schema import cell_sort_key, split_cell_key
from .figure import Plot, Report, pyplot, save, wrap_title

COLOURS = {"regression": "tab:red", "improvement": "tab:green", "unchanged": "tab:gray"}


def plot_ab(data: Report, out_dir: Path) -> Plot | None:
    ab = data.get("ab") or {}
    rows = [c for c in ab.get("comparisons") or [] if c.get("p_value") is not None]
    if not rows:
        return None
    plt = pyplot()
    rows = sorted(rows, key=lambda c: (c["metric"], *cell_sort_key(c["cell"])))
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.3 * len(rows)))
    for i, c in enumerate(rows):
        colour = COLOURS[c["verdict"]]
        ax.barh(i, c["change"] * 100, color=colour, alpha=0.5)
        ax.plot([(r - 1) * 100 for r in c["ratios"]], [i] * len(c["ratios"]), "o", color=colour, markersize=3)
        if c.get("ci"):
            ax.plot([c["ci"][0] * 100, c["ci"][1] * 100], [i, i], color="black", linewidth=1)
        ax.plot([-c["threshold"] * 100, c["threshold"] * 100], [i, i], "|", color="black", markersize=9)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{split_cell_key(c['cell'])[1]} {c['metric']}" for c in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("head vs base, % (dots: each pair; bar: geometric mean; line: 95% CI; ticks: threshold)")
    sides = f"base {ab['base'].get('spec')} vs head {ab['head'].get('spec')}"
    title = f"A/B: {ab['status'].upper()}, {sides}, {len(ab.get('orders') or [])} pairs\n{ab.get('model_key', '')}"
    ax.set_title(wrap_title(title), fontsize=9)
    return Plot(save(fig, out_dir, "ab.png"), "A/B: head against base per cell")
