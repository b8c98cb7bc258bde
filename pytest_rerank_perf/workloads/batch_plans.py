"""How a backend splits one predict call into batches: the indices of each batch, in the order they run.

The plans feed both the backends that run them and the workload's token accounting (padding, MFU), so the
padding a cell reports is the padding its backend computed.

- ``predict``: ``CrossEncoder.predict``'s own order, longest *character* count first, ``batch_size`` per batch;
- ``sorted``: longest *token* count first, ``batch_size`` per batch (what FlagEmbedding's reranker does);
- ``budget``: token-sorted, each batch filled while its padded tokens (pairs x longest) stay within a budget, the
  way text-embeddings-inference fills batches up to ``--max-batch-tokens``. On the matrix's batch-size axis the
  budget is ``batch_size x the call's longest pair`` (truncated): the padded tokens of ``predict``'s largest batch
  on that call, so no budget batch holds more tokens than the ``predict`` cell beside it ran at once; the batches
  after the longest pairs take more of the shorter ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .pairs import Pair, crossencoder_order

Batches = list[list[int]]
BatchPlan = Callable[[Sequence[Pair], Sequence[int], int], Batches]  # (pairs, lengths, batch_size) -> batches


def chunks(order: Sequence[int], batch_size: int) -> Batches:
    return [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def predict_plan(pairs: Sequence[Pair], batch_size: int) -> Batches:
    return chunks(crossencoder_order(pairs), batch_size)


def token_order(lengths: Sequence[int]) -> list[int]:
    """Longest first; ties keep input order (a stable sort), so the plan is deterministic."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def sorted_plan(lengths: Sequence[int], batch_size: int) -> Batches:
    return chunks(token_order(lengths), batch_size)


def token_budget(batch_size: int, lengths: Sequence[int]) -> int:
    """The batch-size axis as a padded-token budget for one call's pairs (see the module docstring)."""
    return batch_size * max(lengths, default=1)


def budget_plan(lengths: Sequence[int], budget: int) -> Batches:
    """Token-sorted batches, each as large as ``budget`` padded tokens allow (never empty: a pair longer than the
    budget goes alone)."""
    batches: Batches = []
    batch: list[int] = []
    longest = 0
    for i in token_order(lengths):
        grown = max(longest, lengths[i])
        if batch and (len(batch) + 1) * grown > budget:
            batches.append(batch)
            batch, grown = [], lengths[i]
        batch.append(i)
        longest = grown
    if batch:
        batches.append(batch)
    return batches
