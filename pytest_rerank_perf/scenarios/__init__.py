"""Deployment scenarios and the batch size each one should use on this GPU, chosen from measured cells.

A scenario is a range of documents per query plus limits: a p99 latency SLO and a VRAM cap. For a one-query-at-a
-time scenario the recommendation is the batch size with the highest worst-case throughput over the measured
``num_pairs`` in the range whose cells all meet the limits. The p99 judged is the predict call's own p99 (service
time, no queueing). The high-concurrency scenario is served by the dynamic batcher, so its recommendation comes
from the load benchmark: the server configuration that sustains the highest Poisson arrival rate within the SLO.

Scenarios are built in and can be changed or added in ini/TOML, one line each::

    rerank_scenarios =
        realtime: p99=30ms
        search-api: pairs=20-40 p99=80ms vram=6GiB
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class Scenario:
    name: str
    min_pairs: int
    max_pairs: int | None  # None: open-ended ("200+")
    p99_s: float | None  # SLO on one request's p99 latency; None: no SLO
    vram_bytes: int | None = None  # cap on peak VRAM; None: whatever the device has
    concurrent: bool = False  # many callers at once, merged by the dynamic batcher
    description: str = ""

    @property
    def pairs_text(self) -> str:
        if self.max_pairs is None:
            return f"{self.min_pairs}+"
        return str(self.min_pairs) if self.min_pairs == self.max_pairs else f"{self.min_pairs}-{self.max_pairs}"

    @property
    def request_pairs(self) -> int:
        """Pairs per request when one size stands for the range: the largest, the worst case for latency."""
        return self.max_pairs or self.min_pairs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BUILT_IN: tuple[Scenario, ...] = (
    Scenario("realtime", 1, 10, 0.050, description="real-time API: one query reranks 1-10 documents within an SLO"),
    Scenario("offline", 50, None, 2.0, description="offline bulk: 50-200+ documents per query, throughput first"),
    Scenario("edge", 1, 5, 0.100, 4 * 2**30, description="edge: 1-5 documents, low memory (4 GiB)"),
    Scenario(
        "concurrent",
        10,
        10,
        0.200,
        concurrent=True,
        description="high concurrency: many queries of 10 documents at once, merged by the dynamic batcher",
    ),
)

# key -> (units, what it is, examples)
_QUANTITIES: dict[str, tuple[dict[str, float], str, str]] = {
    "p99": ({"ms": 1e-3, "s": 1.0}, "a duration", "p99=50ms, p99=2s"),
    "vram": ({"b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30}, "a size", "vram=4GiB, vram=512MiB"),
}


def _quantity(key: str, text: str, line: str) -> float | None:
    """``50ms``, ``4GiB``, or ``none`` (no limit)."""
    units, what, examples = _QUANTITIES[key]
    if text.lower() == "none":
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text.lower())
    if not m or m.group(2) not in units or not float(m.group(1)) > 0:
        raise UsageError(f"scenario {line!r}: {key}={text!r} is not {what}; write e.g. {examples} or none")
    return float(m.group(1)) * units[m.group(2)]


def _pairs(text: str, line: str) -> tuple[int, int | None]:
    m = re.fullmatch(r"(\d+)(?:(\+)|-(\d+))?", text)
    low = int(m.group(1)) if m else 0
    high = None if m and m.group(2) else int(m.group(3)) if m and m.group(3) else low
    if not m or low < 1 or (high is not None and high < low):
        raise UsageError(
            f"scenario {line!r}: pairs={text!r}; write N, LOW-HIGH or LOW+ (documents per query), e.g. 1-10"
        )
    return low, high


def parse_scenarios(lines: Iterable[str], base: Sequence[Scenario] = BUILT_IN) -> tuple[Scenario, ...]:
    """``NAME: key=value ...`` lines (keys: pairs, p99, vram, concurrent) over the built-in scenarios.

    A line naming a built-in scenario changes only the keys it gives; a new name must give ``pairs``.
    """
    scenarios = {s.name: s for s in base}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise UsageError(f"scenario {line!r}: write NAME: pairs=1-10 p99=50ms [vram=4GiB] [concurrent=yes]")
        fields: dict[str, Any] = {}
        for token in rest.split():
            key, eq, value = token.partition("=")
            if not eq:
                raise UsageError(f"scenario {line!r}: {token!r} is not key=value")
            if key == "pairs":
                fields["min_pairs"], fields["max_pairs"] = _pairs(value, line)
            elif key == "p99":
                fields["p99_s"] = _quantity(key, value, line)
            elif key == "vram":
                size = _quantity(key, value, line)
                fields["vram_bytes"] = None if size is None else int(size)
            elif key == "concurrent":
                if value.lower() not in ("yes", "no", "true", "false"):
                    raise UsageError(f"scenario {line!r}: concurrent={value!r}; write yes or no")
                fields["concurrent"] = value.lower() in ("yes", "true")
            else:
                raise UsageError(f"scenario {line!r}: unknown key {key!r}; use pairs, p99, vram or concurrent")
        if name in scenarios:
            scenarios[name] = replace(scenarios[name], **fields)
        elif "min_pairs" not in fields:
            raise UsageError(f"scenario {line!r}: a new scenario needs pairs=..., e.g. {name}: pairs=20-40 p99=80ms")
        else:
            scenarios[name] = Scenario(name, **{"p99_s": None, **fields}, description="from the ini file")
    return tuple(scenarios.values())


@dataclass(frozen=True)
class Recommendation:
    scenario: str
    description: str
    batch_size: int | None  # None: nothing measured meets the limits
    server: str | None = None  # concurrent scenarios: the server configuration
    variant: str | None = None  # cell scenarios: the backend configuration (backends/variants.py)
    # the chosen configuration's pairs/s over predict's at the library default and at the tutorial's batch size, both
    # measured in this run on the same sizes; None where this run did not measure them (a note says so)
    vs_predict_bs32: float | None = None
    vs_predict_bs8: float | None = None
    max_length: int | None = None
    judged_on: tuple[int, ...] = ()  # num_pairs of the cells (or pairs per request) it was judged on
    pairs_per_s: float | None = None  # worst case over judged_on
    p99_s: float | None = None  # worst case over judged_on
    vram_bytes: int | None = None
    max_rate: float | None = None  # concurrent: requests/s sustained within the SLO
    margin: str = ""
    notes: tuple[str, ...] = ()
    pairs: str = ""  # the scenario's range of documents per request, e.g. "1-10"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend_from_load(scenario: Scenario, load: Mapping[str, Any] | None) -> Recommendation:
    """The server configuration with the highest arrival rate that met the SLO in the load benchmark."""
    if not load or not load.get("servers"):
        return Recommendation(
            scenario.name, scenario.description, None, notes=("the dynamic-batcher load benchmark did not run",)
        )
    rates = {name: s.get("max_rate") for name, s in load["servers"].items()}
    passing = sorted(((r, name) for name, r in rates.items() if r), reverse=True)
    if not passing:
        return Recommendation(
            scenario.name,
            scenario.description,
            None,
            judged_on=(int(load["pairs_per_request"]),),
            notes=("no server configuration met the p99 target at any rate tried",),
        )
    rate, name = passing[0]
    server = load["servers"][name]
    best = max((p for p in server["points"] if p["target_rate"] == rate), key=lambda p: p["target_rate"])
    margin = [f"p99 {best['latency']['p99'] * 1e3:.1f} ms of {load['p99_target_s'] * 1e3:.0f} ms at {rate:.1f} req/s"]
    fixed = rates.get(load.get("reference", ""))
    if fixed and name != load.get("reference"):
        margin.append(f"{rate / fixed:.2f}x the rate of per-request predict ({load['reference']})")
    return Recommendation(
        scenario.name,
        scenario.description,
        server.get("max_batch"),
        server=name,
        judged_on=(int(load["pairs_per_request"]),),
        pairs_per_s=best["pairs_per_s"],
        p99_s=best["latency"]["p99"],
        max_rate=rate,
        margin="; ".join(margin),
    )
