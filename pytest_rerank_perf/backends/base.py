"""The ``Reranker`` protocol: what the harness needs from a model, whatever serves it.

Every measurement procedure, tracker and the batcher talk to a ``Reranker``; none of them knows about
sentence-transformers. A new backend (ONNX Runtime, a served endpoint, a stand-in) is one module in this package
that implements the protocol, plus a line in ``backends/__init__.py``.

Its methods may be called from several threads at once (the dynamic batcher encodes in its tokenizer thread while
its worker runs ``predict_encoded``; a caller may run ``predict`` meanwhile): a backend holds ``guards.exclusive``
of what a method uses (model first, then tokenizer) so that no tokenizer or model is used by two threads at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..workloads.batch_plans import Batches
from .encoded import Encoded
from .identity import ModelIdentity
from .phases import PhaseRecorder

Pair = tuple[str, str]


@runtime_checkable
class Reranker(Protocol):
    identity: ModelIdentity
    device: str  # "cpu" or "cuda:N": where its work runs (timing and memory are read there)
    variant: str  # "predict" for the reference; a variant's name (backends/variants.py) otherwise

    @property
    def tokenizer(self) -> Any:
        """The tokenizer that decides token counts (workloads are defined in tokens)."""

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        """Scores of ``pairs`` as the backend serves them (activation applied), in input order."""

    def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        """Raw logits (float64, no activation): what score-invariance checks compare."""

    def batches(self, pairs: Sequence[Pair], lengths: Sequence[int], batch_size: int) -> Batches:
        """Indices of each batch ``predict(pairs, batch_size)`` runs, in order (``lengths``: encoded, truncated):
        what the cell's padding and FLOP figures are counted over."""

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        """Each pair's input ids, truncated as the model sees them: tokenized once, scored by ``predict_encoded``."""

    def predict_encoded(self, encoded: Sequence[Encoded], batch_size: int) -> np.ndarray:
        """Scores of pairs ``encode`` tokenized (no second tokenization): what the dynamic batcher calls."""

    def batch_module(self) -> Any | None:
        """A torch module whose forward runs exactly one batch (hooked for per-batch timing), or None."""

    def flop_config(self) -> Any | None:
        """A config with hidden_size, intermediate_size and num_hidden_layers for FLOP counting, or None."""

    def truncating_at(self, max_length: int) -> AbstractContextManager[None]:
        """Within the block, pairs are truncated at ``max_length`` tokens (the OOM boundary search uses it)."""

    def timed_phases(self, recorder: PhaseRecorder) -> AbstractContextManager[bool]:
        """Within the block, tokenization and host-to-device copies are reported to ``recorder``; yields whether
        this backend reports them (the time breakdown says why not where it does not)."""
