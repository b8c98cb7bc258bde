"""Hypothesis strategies for reranker inputs: sets of query-document pairs of chosen token lengths and scripts.

Pairs are built through the workload builder, so every drawn pair has an exact encoded length under the model's
own tokenizer; hypothesis shrinks towards few, short, single-script pairs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .lexicon import SCRIPTS
from .workload import Pair, Uniform, WorkloadSpec, build_workload

MIN_PAIR_TOKENS = 16  # room for the 4 special tokens, a query of up to 8 tokens and a document


def workload_specs(max_tokens: int = 256, docs_per_query: tuple[int, int] = (1, 6)) -> st.SearchStrategy[WorkloadSpec]:
    """Seeded workload specs with uniform pair lengths in a drawn range, one or both scripts."""

    @st.composite
    def specs(draw: st.DrawFn) -> WorkloadSpec:
        low = draw(st.integers(MIN_PAIR_TOKENS, max_tokens))
        high = draw(st.integers(low, max_tokens))
        scripts = draw(st.lists(st.sampled_from(sorted(SCRIPTS)), min_size=1, max_size=len(SCRIPTS), unique=True))
        return WorkloadSpec(
            Uniform(low, high),
            query_tokens=Uniform(2, 8),
            scripts=tuple(sorted(scripts)),
            docs_per_query=draw(st.integers(*docs_per_query)),
            seed=draw(st.integers(0, 2**16)),
        )

    return specs()


def pair_sets(tokenizer: Any, max_pairs: int = 12, max_tokens: int = 256) -> st.SearchStrategy[list[Pair]]:
    """Lists of 1..``max_pairs`` pairs (several documents per query), exact token lengths up to ``max_tokens``."""
    return st.builds(
        lambda spec, n: list(build_workload(spec, tokenizer, n).pairs),
        workload_specs(max_tokens),
        st.integers(1, max_pairs),
    )
