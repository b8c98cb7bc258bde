"""The data profile: what a workload's pairs cost before anything is timed.

Pairs, requests and documents per request; encoded pair lengths under the model's tokenizer (p50/p90/p99/max);
how many pairs and tokens ``max_length`` cuts off (a cut passage is scored on its first tokens only, silently);
and the padding each batch size adds (``CrossEncoder.predict`` pads every batch to its longest pair). Computed
from the tokenizer alone, so it is exact and the same on every machine. One profile per data source: a data
file, or a seeded recipe (its largest workload; padding per num_pairs of the matrix).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

from ..tables import Table

# More pairs than this cut by max_length and the summary says so at its top.
TRUNCATION_WARN = 0.03
_BINS = 40


def nearest_rank(values: Sequence[int], q: float) -> int:
    """The q-quantile by the nearest-rank method: always a length some pair has."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _spread(values: Sequence[int]) -> dict[str, float]:
    return {
        "min": min(values),
        "p50": nearest_rank(values, 0.5),
        "p90": nearest_rank(values, 0.9),
        "p99": nearest_rank(values, 0.99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def _histogram(lengths: Sequence[int]) -> dict[str, list[int]]:
    """Counts in equal-width bins from 0 to the longest pair: what ``lengths.png`` draws."""
    width = max(1, math.ceil(max(lengths) / _BINS))
    counts = [0] * (max(lengths) // width + 1)
    for n in lengths:
        counts[n // width] += 1
    return {"edges": [i * width for i in range(len(counts) + 1)], "counts": counts}


@dataclass(frozen=True)
class DataProfile:
    data_id: str  # a data file's id (content hash), or the seeded recipe's id
    source: str  # the file's path, or "seeded"
    shape: str  # "requests", "pairs" or "seeded"
    pairs: int
    requests: int
    docs_per_request: dict[str, float]
    lengths: dict[str, float]  # encoded pair length, untruncated, special tokens included
    max_length: int | None
    truncated_pairs: int
    truncated_tokens: int  # tokens beyond max_length, over all pairs
    total_tokens: int
    histogram: dict[str, list[int]]
    padding: dict[str, dict[str, float]] = field(default_factory=dict)  # num_pairs -> batch size -> padded share
    model_limit: int | None = None  # the most tokens the model's position table takes (None: unknown)

    @staticmethod
    def of(
        data_id: str,
        source: str,
        shape: str,
        lengths: Sequence[int],
        sizes: Sequence[int],
        max_length: int | None,
        model_limit: int | None = None,
    ) -> DataProfile:
        """``lengths``: every pair's encoded length; ``sizes``: documents per request (flat pairs: all 1)."""
        cut = [n - max_length for n in lengths if max_length and n > max_length]
        return DataProfile(
            data_id,
            source,
            shape,
            len(lengths),
            len(sizes),
            _spread(sizes),
            _spread(lengths),
            max_length,
            len(cut),
            sum(cut),
            sum(lengths),
            _histogram(lengths),
            model_limit=model_limit,
        )

    def with_padding(self, num_pairs: int, by_batch: Mapping[int, float]) -> DataProfile:
        padding = {**self.padding, str(num_pairs): {str(b): f for b, f in sorted(by_batch.items())}}
        return replace(self, padding=padding)

    @property
    def truncated_share(self) -> float:
        return self.truncated_pairs / self.pairs

    def merge(self, other: DataProfile) -> DataProfile:
        """The same source seen by another cell or worker: the larger workload's figures, every padding row."""
        big = other if other.pairs > self.pairs else self
        return replace(big, padding={**self.padding, **other.padding})

    def warning(self) -> str | None:
        """A line for the top of the summary when max_length cuts more than a few percent of the pairs."""
        if self.max_length is None or self.truncated_share <= TRUNCATION_WARN:
            return None
        p99 = int(self.lengths["p99"])
        fix = f"--rerank-max-length {p99} would cover p99 ({p99} tokens)."
        if self.model_limit is not None and p99 > self.model_limit:
            fix = (
                f"p99 is {p99} tokens, beyond the {self.model_limit} the model takes: chunk the long passages, or "
                f"use --rerank-max-length {self.model_limit} (its most) to cut fewer."
            )
        return (
            f"TRUNCATED: max_length {self.max_length} cuts {self.truncated_pairs} of {self.pairs} pairs "
            f"({self.truncated_share:.1%}) of {self.data_id}, {self.truncated_tokens / self.total_tokens:.1%} of the "
            f"data's tokens: the model scores the cut passages on their first {self.max_length} tokens only. {fix}"
        )

    def lines(self) -> list[str]:
        d, n = self.docs_per_request, self.lengths
        where = f" ({self.source})" if self.source != "seeded" else ""
        cut = (
            f"max_length {self.max_length} cuts {self.truncated_pairs} pairs ({self.truncated_share:.1%}) and "
            f"{self.truncated_tokens:,} tokens ({self.truncated_tokens / self.total_tokens:.1%} of all)"
        )
        out = [f"data {self.data_id}{where}: {self.pairs:,} pairs"]
        if self.shape == "requests":
            out[0] += f" in {self.requests} requests (documents per request: min {d['min']:.0f}, p50 {d['p50']:.0f}, "
            out[0] += f"max {d['max']:.0f})"
        out.append(
            f"  encoded pair length, tokens: p50 {n['p50']:.0f}, p90 {n['p90']:.0f}, p99 {n['p99']:.0f}, "
            f"max {n['max']:.0f}; {cut}"
        )
        if self.shape == "pairs":  # whole chunks only: say what each num_pairs leaves out
            chunks = [
                f"{k} calls of {n}, {self.pairs - k * n} pairs left out"
                for n in self._sizes()
                if (k := self.pairs // n)
            ]
            out.append("  chunks per round: " + "; ".join(chunks))
        return out

    def _sizes(self) -> list[int]:
        return sorted(int(n) for n in self.padding)

    def padding_table(self) -> Table:
        sizes = sorted({int(b) for row in self.padding.values() for b in row})
        rows = [
            (f"{n} pairs", *(f"{row[str(b)]:.0%}" if str(b) in row else "-" for b in sizes))
            for n, row in sorted(self.padding.items(), key=lambda kv: int(kv[0]))
        ]
        return Table(("padding added", *(f"bs{b}" for b in sizes)), rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> DataProfile:
        return DataProfile(**dict(data))


@dataclass
class DataProfiles:
    key: ClassVar[str] = "data"
    profiles: dict[str, DataProfile] = field(default_factory=dict)

    def report_fields(self) -> dict[str, Any]:
        return {"data_profiles": {k: p.to_dict() for k, p in self.profiles.items()}}

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"data_profiles": {}}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> DataProfiles | None:
        found = data.get("data_profiles")
        return cls({k: DataProfile.from_dict(p) for k, p in found.items()}) if found else None

    def merge(self, other: DataProfiles) -> DataProfiles:
        merged = dict(self.profiles)
        for k, p in other.profiles.items():
            merged[k] = merged[k].merge(p) if k in merged else p
        return DataProfiles(merged)

    def warnings(self) -> list[str]:
        return [w for p in self.profiles.values() if (w := p.warning())]

    def summary_lines(self) -> list[str]:
        out: list[str] = []
        for p in self.profiles.values():
            out += [*p.lines(), *("  " + line for line in p.padding_table().text()), ""]
        return out

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        out = ["", "## Data profile", ""]
        out += [f"![{t}]({f})" for f, t in plots.items() if f == "lengths.png"]
        for p in self.profiles.values():
            out += ["", *(f"- {line.strip()}" for line in p.lines()), ""]
            if warning := p.warning():
                out += [f"> **{warning}**", ""]
            out += p.padding_table().markdown()
        return out
