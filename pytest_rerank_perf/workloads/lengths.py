"""Token-length distributions: how long each encoded pair (or query) of a workload is, drawn from a seed.

A distribution only draws numbers; ``workload.build_workload`` renders them into text under a tokenizer. Each has
an ``id`` (part of the workload id) and a ``low`` bound (the shortest length it can draw).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

from ..errors import WorkloadError
from ..validation import positive_int

__all__ = ["Fixed", "LengthDist", "LongTail", "Uniform", "parse_length_dist"]


class LengthDist(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def low(self) -> int: ...

    def sample(self, rng: random.Random, n: int) -> list[int]: ...


@dataclass(frozen=True)
class Fixed:
    tokens: int

    def __post_init__(self) -> None:
        positive_int(self.tokens, "fixed length", WorkloadError)

    @property
    def id(self) -> str:
        return f"fixed{self.tokens}"

    @property
    def low(self) -> int:
        return self.tokens

    def sample(self, rng: random.Random, n: int) -> list[int]:
        return [self.tokens] * n


@dataclass(frozen=True)
class Uniform:
    low: int
    high: int

    def __post_init__(self) -> None:
        positive_int(self.low, "uniform low", WorkloadError)
        if self.high < self.low:
            raise WorkloadError(f"uniform:{self.low}-{self.high}: the upper bound is below the lower bound")

    @property
    def id(self) -> str:
        return f"uniform{self.low}-{self.high}"

    def sample(self, rng: random.Random, n: int) -> list[int]:
        return [rng.randint(self.low, self.high) for _ in range(n)]


@dataclass(frozen=True)
class LongTail:
    """Log-normal passage lengths clipped to [low, high]: most passages short, a long tail of long ones.

    The default (median 160, sigma 0.6) puts p10 at ~75 and p90 at ~345 tokens, the shape of chunked web and
    document passages in RAG pipelines.
    """

    median: int = 160
    sigma: float = 0.6
    low: int = 32
    high: int = 1024

    def __post_init__(self) -> None:
        positive_int(self.median, "longtail median", WorkloadError)
        positive_int(self.low, "longtail low", WorkloadError)
        if not self.low <= self.median <= self.high:
            raise WorkloadError(f"longtail: need low <= median <= high, got {self.low}, {self.median}, {self.high}")
        if not 0 < self.sigma < 3:
            raise WorkloadError(f"longtail sigma {self.sigma}: use a value between 0 and 3")

    @property
    def id(self) -> str:
        return f"longtail{self.median}s{self.sigma:g}r{self.low}-{self.high}"

    def sample(self, rng: random.Random, n: int) -> list[int]:
        mu = math.log(self.median)
        return [min(self.high, max(self.low, round(rng.lognormvariate(mu, self.sigma)))) for _ in range(n)]


def parse_length_dist(text: str) -> LengthDist:
    """``128``, ``fixed:128``, ``uniform:64-256``, ``longtail`` or ``longtail:MEDIAN``."""
    kind, _, arg = text.strip().lower().partition(":")
    try:
        if kind.isdigit():
            return Fixed(int(kind))
        if kind == "fixed":
            return Fixed(int(arg))
        if kind == "uniform":
            low, _, high = arg.partition("-")
            return Uniform(int(low), int(high))
        if kind == "longtail":
            return LongTail(int(arg)) if arg else LongTail()
    except ValueError:
        pass
    raise WorkloadError(
        f"length distribution {text!r} not understood; use N, fixed:N, uniform:LOW-HIGH, longtail or longtail:MEDIAN"
    )
