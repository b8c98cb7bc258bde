"""``ABResult``: an A/B's verdict, both sides' identities and every paired comparison, in the run report.

Statuses, worst first: ``interrupted`` (Ctrl-C or SIGTERM: nothing judged; exit 2, as any interrupted run),
``fail`` (a regression beyond threshold and significant, or a cell the head lost that the base measured, out of
memory say), ``no-verdict`` (could not judge: a side would not build or crashed, the sides measured different
models, a cell one side lacks, nothing compared), ``pass``. Exit codes follow ``git bisect run``: 0 pass, 1 fail,
125 no-verdict (skip this commit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from ..gate.verdict import figure_text
from ..store.schema import cell_sort_key, split_cell_key
from ..tables import Table
from .paired import PairedComparison

Status = Literal["pass", "fail", "no-verdict", "interrupted"]
EXIT_CODES: dict[str, int] = {"pass": 0, "fail": 1, "no-verdict": 125, "interrupted": 2}
_ORDER = {"regression": 0, "improvement": 1, "unchanged": 2}
HEADER = ("cell", "metric", "base", "head", "change", "95% CI", "threshold", "min detectable", "pairs", "p", "verdict")


@dataclass(frozen=True)
class MissingCell:
    """A cell one side measured and the other did not, in at least one pair."""

    cell: str
    base: str  # what the base side did with it: "ok", "oom", "skipped", "absent"...
    head: str

    @property
    def lost(self) -> bool:
        """The head lost a cell the base measured to out-of-memory: a regression, not a gap."""
        return self.base == "ok" and self.head == "oom"

    def describe(self) -> str:
        return f"{self.cell}: base {self.base}, head {self.head}"


@dataclass
class ABResult:
    key: ClassVar[str] = "ab"

    base: dict[str, Any]  # the side's identity (spec, kind, commit, dirty, requirements) and its package versions
    head: dict[str, Any]
    pairs: int  # pairs of processes planned
    orders: list[str] = field(default_factory=list)  # "base,head" or "head,base" per pair that ran
    mode: str = "interleaved"  # or "duet": a pair's two processes at once, a core each
    threshold: float = 0.0
    alpha: float = 0.01
    model_key: str = ""
    model: dict[str, Any] = field(default_factory=dict)  # the model both sides measured, as their reports name it
    comparisons: list[PairedComparison] = field(default_factory=list)
    missing: list[MissingCell] = field(default_factory=list)
    failure: str | None = None  # why nothing (or not all) could be compared
    notes: list[str] = field(default_factory=list)  # what the reader must know (the harness differs too...)
    interrupted: str | None = None  # "while A/B pair 2 of 10 ran": stopped there, nothing judged

    @property
    def regressions(self) -> list[PairedComparison]:
        return [c for c in self.comparisons if c.verdict == "regression"]

    @property
    def status(self) -> Status:
        if self.interrupted:
            return "interrupted"
        if self.regressions or any(m.lost for m in self.missing):
            return "fail"
        if self.failure or self.missing or not self.comparisons:
            return "no-verdict"
        return "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def verdict_line(self) -> str:
        status = self.status
        if status == "interrupted":
            return (
                f"A/B: INTERRUPTED (exit 2) {self.interrupted}: no verdict; the processes stopped, each finished "
                "one's report stays under ab/ in the report folder"
            )
        if status == "fail":
            lost = sum(m.lost for m in self.missing)
            what = [f"{len(self.regressions)} regression(s) beyond {self.threshold:.0%} and significant"]
            what += [f"{lost} cell(s) out of memory on the head only"] if lost else []
            return f"A/B: FAIL (exit 1): {'; '.join(what)}"
        if status == "no-verdict":
            why = self.failure or (
                f"{len(self.missing)} cell(s) measured by one side only" if self.missing else "nothing was compared"
            )
            return f"A/B: NO VERDICT (exit 125, could not judge): {why}"
        return (
            f"A/B: PASS (exit 0): no regression beyond {self.threshold:.0%} in {len(self.comparisons)} comparisons "
            f"over {len(self.orders)} pairs"
        )

    def sides_lines(self) -> list[str]:
        out = []
        for role in ("base", "head"):
            side = getattr(self, role)
            commit = side.get("commit")
            state = "" if commit is None else f" at {commit[:10]}{' (dirty)' if side.get('dirty') else ''}"
            out.append(f"{role}: {side.get('spec')} ({side.get('kind')}){state}")
        differ = self.differing_versions()
        if differ:
            out.append("versions that differ: " + "; ".join(f"{k} {b} -> {h}" for k, (b, h) in differ.items()))
        return out

    def differing_versions(self) -> dict[str, tuple[str, str]]:
        b, h = self.base.get("software") or {}, self.head.get("software") or {}
        return {k: (b.get(k, "absent"), h.get(k, "absent")) for k in sorted({*b, *h}) if b.get(k) != h.get(k)}

    def _row(self, c: PairedComparison, short: bool) -> tuple[str, ...]:
        ci = "-" if c.ci is None else f"{c.ci[0] * 100:+.1f}..{c.ci[1] * 100:+.1f}%"
        return (
            split_cell_key(c.cell)[1] if short else c.cell,
            c.metric,
            figure_text(c.metric, c.base),
            figure_text(c.metric, c.head),
            f"{c.change * 100:+.1f}%",
            ci,
            f"{c.threshold * 100:.0f}%",
            "-" if c.mdr is None else f"{c.mdr * 100:.1f}%",
            str(len(c.ratios)),
            "-" if c.p_value is None else f"pairs {c.p_value:.2g}, rounds {c.rounds_p:.2g}",
            c.verdict.upper() if c.verdict == "regression" else c.verdict,
        )

    def table(self, moved_only: bool = False) -> Table:
        shown = [c for c in self.comparisons if not moved_only or c.verdict != "unchanged"]
        shown.sort(key=lambda c: (_ORDER[c.verdict], cell_sort_key(c.cell), c.metric))
        return Table(HEADER, [self._row(c, moved_only) for c in shown], left_columns=2, trailing_text=2)

    def mdr_line(self) -> str:
        parts = []
        for name in sorted({c.metric for c in self.comparisons if c.p_value is not None}):
            mdrs = [c.mdr for c in self.comparisons if c.metric == name and c.mdr is not None]
            if mdrs:
                parts.append(f"{name} {min(mdrs):.1%}-{max(mdrs):.1%}")
        return "minimum detectable regression (caught 95% of the time): " + (", ".join(parts) or "none (< 2 pairs)")

    # --- MeasurementResult -------------------------------------------------------------------------------------

    def report_fields(self) -> dict[str, Any]:
        return {
            "ab": {
                "status": self.status,
                "exit_code": self.exit_code,
                "base": self.base,
                "head": self.head,
                "pairs": self.pairs,
                "orders": self.orders,
                "mode": self.mode,
                "threshold": self.threshold,
                "alpha": self.alpha,
                "model_key": self.model_key,
                "model": self.model,
                "comparisons": [c.to_dict() for c in self.comparisons],
                "missing": [vars(m) for m in self.missing],
                "failure": self.failure,
                "notes": self.notes,
                "interrupted": self.interrupted,
            }
        }

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"ab": None}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> ABResult | None:
        ab = data.get("ab")
        if not ab:
            return None
        return ABResult(
            base=dict(ab["base"]),
            head=dict(ab["head"]),
            pairs=int(ab["pairs"]),
            orders=list(ab.get("orders") or []),
            mode=ab.get("mode", "interleaved"),
            threshold=float(ab["threshold"]),
            alpha=float(ab["alpha"]),
            model_key=ab.get("model_key", ""),
            model=dict(ab.get("model") or {}),
            comparisons=[PairedComparison.from_dict(c) for c in ab.get("comparisons") or []],
            missing=[MissingCell(**m) for m in ab.get("missing") or []],
            failure=ab.get("failure"),
            notes=list(ab.get("notes") or []),
            interrupted=ab.get("interrupted"),
        )

    def merge(self, other: ABResult) -> ABResult:
        return replace(other)  # one A/B per run: the later one stands

    def summary_lines(self) -> list[str]:
        """The terminal: verdict first, the sides, then only the comparisons that moved and a count of the rest."""
        out = [self.verdict_line(), *self.sides_lines(), *self.notes]
        if self.failure and self.comparisons:
            out.append(f"could not judge everything: {self.failure}")
        out += [f"one side only: {m.describe()}" for m in self.missing]
        if self.comparisons:
            moved = self.table(moved_only=True)
            if moved.rows:
                workloads = sorted({split_cell_key(c.cell)[0] for c in self.comparisons})
                out += [f"workload {', '.join(workloads)} (cells: n<pairs>/bs<batch size>)", *moved.text()]
            unchanged = sum(c.verdict == "unchanged" for c in self.comparisons)
            out.append(f"{unchanged} of {len(self.comparisons)} comparisons unchanged")
            out.append(self.mdr_line())
        return out

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        out = ["", "## A/B: head against base on this machine", "", f"**{self.verdict_line()}**", ""]
        out += [f"- {line}" for line in self.sides_lines()]
        out += [
            f"- {len(self.orders)} of {self.pairs} pairs of fresh processes ({self.mode}), orders: "
            f"{' | '.join(self.orders) or '-'}",
            f"- model key: `{self.model_key or '-'}`",
            f"- threshold {self.threshold:.0%}, alpha {self.alpha}; {self.mdr_line()}",
        ]
        out += [f"- {note}" for note in self.notes]
        if self.failure:
            out.append(f"- could not judge: {self.failure}")
        out += [f"- one side only: {m.describe()}" for m in self.missing]
        if self.comparisons:
            out += ["", *self.table().markdown()]
        if "ab.png" in plots:
            out += ["", f"![{plots['ab.png']}](ab.png)"]
        return out
