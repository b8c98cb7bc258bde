"""The order of an A/B's processes: K pairs, each one base and one head process, each pair's order random.

Balanced: half the pairs run base first, half head first (one more of either, seeded, when K is odd), shuffled by a
seeded generator. Whatever drifts through the session (a machine warming up, a neighbour's job starting) then
lands on both sides alike, and going first is never one side's privilege.
"""

from __future__ import annotations

import random

BASE, HEAD = "base", "head"


def pair_orders(pairs: int, seed: int = 0) -> list[tuple[str, str]]:
    """``pairs`` orders, each (first, second)."""
    if pairs < 1:
        raise ValueError("at least one pair")
    rng = random.Random(f"rerank-ab-{seed}")
    base_first = pairs // 2 + (pairs % 2 and rng.random() < 0.5)
    orders = [(BASE, HEAD)] * base_first + [(HEAD, BASE)] * (pairs - base_first)
    rng.shuffle(orders)
    return orders
