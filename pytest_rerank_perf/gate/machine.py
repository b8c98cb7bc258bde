"""Same profile id, same machine? The baseline's fingerprint against this run's (``fingerprint.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..machine.fingerprint import Fingerprint

# Below this the GEMM rate is taken as equal whatever its noise: a GEMM sees clock and neighbour changes that a
# reranker's mostly memory-bound forwards feel far less. Beyond it, and beyond 4 noise widths, it is another machine.
MIN_DIFFERENCE = 0.10
NOISE_WIDTHS = 4


def machine_difference(base: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """Why the baseline's machine is not this one (a sentence), or None when nothing says so."""
    old, new = Fingerprint.from_dict(base.get("fingerprint")), Fingerprint.from_dict(now.get("fingerprint"))
    if old is None or new is None or old.gemm != new.gemm:
        return None
    for name, unit in (("power_limit_w", "W"), ("max_sm_clock_mhz", "MHz")):
        was, now_value = getattr(old, name), getattr(new, name)
        if was and now_value and was != now_value:
            return f"GPU {name.replace('_', ' ')} {now_value} {unit} here, {was} {unit} in the baseline"
    change = new.flops / old.flops - 1
    allowed = max(MIN_DIFFERENCE, NOISE_WIDTHS * math.hypot(old.noise, new.noise))
    if abs(change) > allowed:
        return (
            f"a {old.gemm} runs at {new.flops / 1e9:,.1f} GFLOP/s here and {old.flops / 1e9:,.1f} in the baseline "
            f"({change:+.0%}, beyond the {allowed:.0%} its own noise allows)"
        )
    return None
