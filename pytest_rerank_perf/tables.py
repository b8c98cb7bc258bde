"""One table model, rendered to the terminal (aligned text) and to Markdown, so both always show the same rows."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: Sequence[tuple[str, ...]] = ()
    title: str = ""
    left_columns: int = 1  # how many leading columns are text (left-aligned); the rest are figures
    trailing_text: int = 0  # how many trailing columns are text too (a reason, after the figures)

    def text(self) -> list[str]:
        """Left-aligned text columns, right-aligned figures, a rule under the header."""
        rows = [self.header, *self.rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.header))]
        figures = range(self.left_columns, len(self.header) - self.trailing_text)
        out = [self.title] if self.title else []
        for k, row in enumerate(rows):
            cells = (
                cell.rjust(w) if i in figures else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            out.append("  ".join(cells).rstrip())
            if k == 0:
                out.append("  ".join("-" * w for w in widths))
        return out

    def markdown(self, bold: Collection[str] = ()) -> list[str]:
        """A Markdown table (title in bold above it); cells whose text is in ``bold`` are emphasised."""
        out = [f"**{self.title}**", ""] if self.title else []
        out += ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        out += ["| " + " | ".join(f"**{c}**" if c in bold else c for c in row) + " |" for row in self.rows]
        return out


def ms(seconds: float | None) -> str:
    """A duration for a table: milliseconds, or "-" where there is none."""
    return "-" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1e3:.1f} ms"


def rate(value: float | None) -> str:
    """A rate for a table (pairs/s, requests/s), or "-" where there is none."""
    return "-" if value is None else f"{value:,.1f}"
