"""What every plot shares: the report's JSON form, the Agg backend (no display on a CI runner), the title line that
names model, precision and device, and saving a figure into the report folder."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Report = Mapping[str, Any]


@dataclass(frozen=True)
class Plot:
    filename: str
    title: str


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 10})
    return plt


def subject(data: Report) -> str:
    """``model, dtype, max_length on device``: the line every plot title carries."""
    model = data.get("model") or {}
    profile = data.get("profile") or {}
    gpu = profile.get("gpu") or {}
    device = gpu.get("name") or f"CPU ({profile.get('cpu_model', 'unknown')}): CPU fallback, not GPU figures"
    return (
        f"{model.get('name', '?')} ({model.get('source', '?')}), {model.get('dtype', '?')}, "
        f"max_length {model.get('max_length', '?')} on {device}"
    )


def wrap_title(text: str) -> str:
    """Wrapped so a long model id or device name never runs off the figure."""
    return "\n".join(textwrap.fill(line, 95) for line in text.split("\n"))


def plain_log_ticks(axis: Any) -> None:
    """Log axes labelled 20, 30, 40 rather than 2x10^1."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "1235" else ""))


def save(fig: Any, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name
