"""The ``Reranker`` protocol: what the harness needs from a model, whatever serves it.

Every measurement procedure, tracker and the batcher talk to a ``Reranker``; none of them knows about
sentence-transformers. A new backend (ONNX Runtime, a served endpoint, a stand-in) is one module in this package
that implements the protocol, plus a line in ``backends/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .identity import ModelIdentity

Pair = tuple[str, str]


@runtime_checkable
class Reranker(Protocol):
    identity: ModelIdentity
    device: str  # "cpu" or "cuda:N": where its work runs (timing and memory are read there)

    @property
    def tokenizer(self) -> Any:
        """The tokenizer that decides token counts (workloads are defined in tokens)."""

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        """Scores of ``pairs`` as the backend serves them (activation applied), in input order."""

    def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        """Raw logits (float64, no activation): what score-invariance checks compare."""

    def batch_module(self) -> Any | None:
        """A torch module whose forward runs exactly one batch (hooked for per-batch timing), or None."""

    def flop_config(self) -> Any | None:
        """A config with hidden_size, intermediate_size and num_hidden_layers for FLOP counting, or None."""

    def truncating_at(self, max_length: int) -> AbstractContextManager[None]:
        """Within the block, pairs are truncated at ``max_length`` tokens (the OOM boundary search uses it)."""
