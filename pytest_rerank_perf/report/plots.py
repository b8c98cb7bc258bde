"""PNG plots of a report: throughput and peak VRAM against batch size, latency against load, the baseline diff.

Every function reads the report's JSON form, so ``rerank-perf render`` redraws a saved run exactly. matplotlib is
imported here only, with the non-interactive Agg backend (no display on a CI runner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..store.schema import cell_sort_key
from ..trackers.metrics import METRICS, Metric
from .ab_plot import plot_ab
from .breakdown_plot import plot_breakdown
from .figure import Plot, Report, plain_log_ticks, pyplot, save, subject, wrap_title

_VERDICT_COLOURS = {"regression": "#c62828", "improvement": "#2e7d32", "unchanged": "#9e9e9e"}


def _family(workload_id: str) -> str:
    """A workload id without its ``-n<pairs>``: the recipe or data file it was drawn from."""
    return workload_id.rsplit("-n", 1)[0]


def _by_workload(cells: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """One line per workload, labelled by its size, and by its source where the cells come from several: two
    workloads of one size are two lines, never one zig-zag."""
    families = {_family(c["workload_id"]) for c in cells}
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for c in sorted(cells, key=lambda c: (c["num_pairs"], c["workload_id"], c.get("variant") or "", c["batch_size"])):
        label = f"{c['num_pairs']} pairs" + (f": {_family(c['workload_id'])}" if len(families) > 1 else "")
        variant = c.get("variant") or "predict"
        groups.setdefault(label + ("" if variant == "predict" else f" {variant}"), []).append(c)
    return groups


def _batch_axis(ax: Any, sizes: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("batch_size")


def plot_throughput(data: Report, out_dir: Path) -> Plot | None:
    cells = data.get("cells") or []
    if not any(c["status"] == "ok" for c in cells):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    sizes = sorted({c["batch_size"] for c in cells})
    for label, group in _by_workload(cells).items():
        ok = [c for c in group if c["status"] == "ok"]
        if not ok:
            continue
        line = ax.plot([c["batch_size"] for c in ok], [c["pairs_per_s"] for c in ok], marker="o", label=label)
        best = max(ok, key=lambda c: (c["pairs_per_s"], -c["batch_size"]))
        ax.plot(best["batch_size"], best["pairs_per_s"], marker="*", markersize=16, color=line[0].get_color())
        for c in group:
            if c["status"] == "oom":
                ax.axvline(c["batch_size"], color=line[0].get_color(), linestyle=":", alpha=0.7)
    _batch_axis(ax, sizes)
    ax.set_ylabel("pairs/s (median round)")
    ax.set_ylim(bottom=0)
    ax.set_title(
        wrap_title(f"Throughput vs batch size (star: best; dotted: out of memory)\n{subject(data)}"), fontsize=9
    )
    ax.legend(title="num_pairs (workload)")
    return Plot(save(fig, out_dir, "throughput.png"), "Throughput vs batch size")


def plot_vram(data: Report, out_dir: Path) -> Plot | None:
    cells = [c for c in data.get("cells") or [] if c["status"] == "ok" and c.get("peak_vram_allocated_bytes")]
    if not cells:
        return None  # the CPU fallback has no VRAM figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, group in _by_workload(cells).items():
        bs = [c["batch_size"] for c in group]
        line = ax.plot(bs, [c["peak_vram_allocated_bytes"] / 2**30 for c in group], marker="o", label=label)
        nvml = [
            (c["batch_size"], c["nvml_peak_process_bytes"] / 2**30) for c in group if c.get("nvml_peak_process_bytes")
        ]
        if nvml:
            ax.plot(*zip(*nvml, strict=True), linestyle="--", color=line[0].get_color(), alpha=0.6)
    total = ((data.get("profile") or {}).get("gpu") or {}).get("memory_total_bytes")
    highest = max(max(line.get_ydata()) for line in ax.get_lines())
    device_note = ""
    if total and total / 2**30 <= 2 * highest:
        ax.axhline(total / 2**30, color="black", linestyle="-.", label="device memory")
    elif total:  # a line at 80 GiB would squash 1-10 GiB of data to the bottom of the axis
        device_note = f"; the device has {total / 2**30:.0f} GiB"
    _batch_axis(ax, sorted({c["batch_size"] for c in cells}))
    ax.set_ylabel("peak VRAM, GiB (solid: torch allocated; dashed: process, NVML)")
    ax.set_ylim(bottom=0)
    heading = f"Peak VRAM vs batch size (weights included{device_note})\n{subject(data)}"
    ax.set_title(wrap_title(heading), fontsize=9)
    ax.legend(title="num_pairs (workload)")
    return Plot(save(fig, out_dir, "vram.png"), "Peak VRAM vs batch size")


def plot_metric(data: Report, metric: Metric, out_dir: Path) -> Plot | None:
    """Any registered metric with ``plot=True`` against batch size, one line per input size."""
    cells = [c for c in data.get("cells") or [] if c["status"] == "ok" and metric.read(c) is not None]
    if not cells:
        return None  # not measured here (e.g. a GPU figure on the CPU): no empty plot
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, group in _by_workload(cells).items():
        ax.plot([c["batch_size"] for c in group], [metric.read(c) for c in group], marker="o", label=label)
    _batch_axis(ax, sorted({c["batch_size"] for c in cells}))
    ax.set_ylabel(f"{metric.label} ({'higher' if metric.higher_is_better else 'lower'} is better)")
    ax.set_ylim(bottom=0)
    ax.set_title(wrap_title(f"{metric.label} vs batch size\n{subject(data)}"), fontsize=9)
    ax.legend(title="num_pairs (workload)")
    return Plot(save(fig, out_dir, f"{metric.name}.png"), f"{metric.label} vs batch size")


def plot_load(data: Report, name: str, load: Mapping[str, Any], out_dir: Path) -> list[Plot]:
    servers = load.get("servers") or {}
    if not servers:
        return []
    plt = pyplot()
    target = load["p99_target_s"] * 1e3
    fig, axes = plt.subplots(1, len(servers), figsize=(4.2 * len(servers), 4.4), sharey=True, squeeze=False)
    for ax, (server, result) in zip(axes[0], servers.items(), strict=True):
        points = sorted((p for p in result["points"] if p.get("latency")), key=lambda p: p["target_rate"])
        rates = [p["target_rate"] for p in points]
        for key, style in (("p50", ":"), ("p95", "--"), ("p99", "-")):
            ax.plot(rates, [p["latency"][key] * 1e3 for p in points], style, marker="o", markersize=3, label=key)
        ax.axhline(target, color="#c62828", linewidth=1, label=f"p99 target {target:.0f} ms")
        if result.get("max_rate"):
            ax.axvline(result["max_rate"], color="#2e7d32", linewidth=1, label=f"max {result['max_rate']:.0f} req/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_ticks(ax.xaxis)
        plain_log_ticks(ax.yaxis)
        ax.set_xlabel("offered load, requests/s (Poisson)")
        ax.set_title(server, fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel(f"request latency, ms ({load['pairs_per_request']} pairs per request)")
    fig.suptitle(wrap_title(f"Latency vs load, scenario '{name}'\n{subject(data)}"), fontsize=9)
    plots = [Plot(save(fig, out_dir, f"load-{name}.png"), f"Latency percentiles vs load ({name})")]
    sweep = [p for p in load.get("closed_loop") or [] if p.get("latency")]
    if sweep:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        conc = [p["concurrency"] for p in sweep]
        ax.plot(conc, [p["pairs_per_s"] for p in sweep], marker="o", color="#1565c0", label="pairs/s")
        ax.set_xscale("log", base=2)
        ax.set_xticks(conc)
        ax.set_xticklabels([str(c) for c in conc])
        ax.set_xlabel("concurrent callers (closed loop)")
        ax.set_ylabel("pairs/s", color="#1565c0")
        ax.set_ylim(bottom=0)
        ax2 = ax.twinx()
        ax2.plot(conc, [p["latency"]["p99"] * 1e3 for p in sweep], marker="s", color="#e65100", label="p99")
        ax2.set_ylabel("p99 request latency, ms", color="#e65100")
        ax2.set_ylim(bottom=0)
        ax2.grid(False)
        ax.set_title(
            wrap_title(f"{sweep[0]['server']}: throughput and p99 vs concurrency ({name})\n{subject(data)}"), fontsize=9
        )
        plots.append(Plot(save(fig, out_dir, f"concurrency-{name}.png"), f"Closed-loop concurrency sweep ({name})"))
    return plots


def plot_lengths(data: Report, out_dir: Path) -> Plot | None:
    """Encoded pair lengths of each data source, with max_length (what is cut off) and p50/p99 marked."""
    profiles = data.get("data_profiles") or {}
    if not profiles:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for data_id, p in sorted(profiles.items()):
        edges, counts = p["histogram"]["edges"], p["histogram"]["counts"]
        bar = ax.stairs(counts, edges, fill=True, alpha=0.45, label=f"{data_id} ({p['pairs']:,} pairs)")
        colour = bar.get_facecolor()
        for q, style in (("p50", ":"), ("p99", "--")):
            ax.axvline(p["lengths"][q], color=colour, alpha=1, linestyle=style, linewidth=1)
    max_length = next((p["max_length"] for p in profiles.values() if p.get("max_length")), None)
    if max_length:
        ax.axvline(max_length, color="#c62828", linewidth=1.5, label=f"max_length {max_length} (cut beyond)")
    ax.set_xlabel("encoded pair length, tokens (special tokens included; dotted: p50, dashed: p99)")
    ax.set_ylabel("pairs")
    ax.set_title(wrap_title(f"Pair lengths under the model's tokenizer\n{subject(data)}"), fontsize=9)
    ax.legend(fontsize=7)
    return Plot(save(fig, out_dir, "lengths.png"), "Encoded pair lengths")


def plot_gate(data: Report, out_dir: Path) -> Plot | None:
    gate = data.get("gate") or {}
    sampled = {m.name for m in METRICS if m.kind == "samples"}
    rows = [c for c in gate.get("comparisons") or [] if c["metric"] in sampled]
    if not rows:
        return None
    plt = pyplot()
    rows = sorted(rows, key=lambda c: (c["metric"], *cell_sort_key(c["cell"])))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.28 * len(rows)))
    y = list(range(len(rows)))
    ax.barh(y, [c["change"] * 100 for c in rows], color=[_VERDICT_COLOURS[c["verdict"]] for c in rows])
    for i, c in enumerate(rows):
        if c.get("ci"):
            ax.plot([c["ci"][0] * 100, c["ci"][1] * 100], [i, i], color="black", linewidth=1)
        ax.plot([-c["threshold"] * 100, c["threshold"] * 100], [i, i], "|", color="black", markersize=9)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    several = len({_family(c["cell"].rsplit("/", 1)[0]) for c in rows}) > 1
    ax.set_yticklabels(
        [f"{c['cell'] if several else c['cell'].split('-')[-1]} {c['metric']}" for c in rows], fontsize=7
    )
    ax.invert_yaxis()
    ax.set_xlabel("change vs baseline, % (line: 95% CI; ticks: threshold; red: regression, green: improvement)")
    ax.set_title(wrap_title(f"Baseline comparison: {gate['status'].upper()}\n{subject(data)}"), fontsize=9)
    return Plot(save(fig, out_dir, "baseline.png"), "Change against the baseline, per cell")


def write_plots(data: Report, out_dir: Path) -> list[Plot]:
    """Every plot the report's data supports; none where matplotlib is missing (the Markdown says so)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    plots = [plot_lengths(data, out_dir), plot_throughput(data, out_dir), plot_vram(data, out_dir)]
    plots += [plot_metric(data, m, out_dir) for m in METRICS if m.plot]
    for name, load in sorted((data.get("load") or {}).items()):
        plots += plot_load(data, name, load, out_dir)
    plots.append(plot_gate(data, out_dir))
    plots.append(plot_ab(data, out_dir))
    plots.append(plot_breakdown(data, out_dir))
    return [p for p in plots if p is not None]
