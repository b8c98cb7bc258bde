"""The token-batched variants of the sentence-transformers backend: tokenize once, batch by token length.

``predict(pairs, batch_size)`` encodes every pair once (``encoded.encode``), plans batches by token count
(``batch_plans``: ``sorted`` or ``budget``), and scores them through the model the reference backend holds (the
same weights, so no variant adds memory to another's figures). ``compile`` runs the same batches through
``torch.compile(model, dynamic=True)`` (one graph for every batch shape instead of one per shape).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

import numpy as np

from ..workloads.batch_plans import Batches, budget_plan, sorted_plan, token_budget
from ..workloads.pairs import Pair
from .cross_encoder import CrossEncoderReranker
from .encoded import Encoded, encode, score_encoded
from .guards import exclusive
from .phases import NO_PHASES, PhaseRecorder

Plan = Literal["sorted", "budget"]


def _logits_module(model: Any, compile_backend: str | None) -> Any:
    """A module whose forward takes a padded batch and returns its logits: what the batch tracker hooks. The
    compiled callable sits inside it, so hooks never touch the compiled graph."""
    import torch

    inner = torch.compile(model, dynamic=True, backend=compile_backend) if compile_backend else model

    class Logits(torch.nn.Module):
        def forward(self, features: dict[str, Any]) -> Any:
            return inner(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).logits

    return Logits()


class TokenBatchedReranker:
    """Implements ``Reranker`` over a ``CrossEncoderReranker``'s model; ``plan`` decides the batches."""

    def __init__(
        self, base: CrossEncoderReranker, variant: str, plan: Plan, compile_backend: str | None = None
    ) -> None:
        self.base = base
        self.variant = variant
        self.plan = plan
        self.identity = base.identity
        self.device = base.device
        self._module = _logits_module(base.cross_encoder.model, compile_backend)
        self._pad_id = base.tokenizer.pad_token_id  # read once: the batcher's threads share the tokenizer
        self._phases: PhaseRecorder = NO_PHASES

    @property
    def tokenizer(self) -> Any:
        return self.base.tokenizer

    def batches(self, pairs: Sequence[Pair], lengths: Sequence[int], batch_size: int) -> Batches:
        if self.plan == "budget":
            return budget_plan(lengths, token_budget(batch_size, lengths))
        return sorted_plan(lengths, batch_size)

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        with exclusive(self.tokenizer):  # shared with the reference backend and the batcher's other thread
            return encode(self.tokenizer, pairs, self.base.max_length)

    def _scores(self, encoded: Sequence[Encoded], plan: Batches, activation: Callable[[Any], Any] | None) -> np.ndarray:
        where = str(self.base.cross_encoder.device)  # where the weights are, as predict moves its batches
        with exclusive(self.base.cross_encoder):  # the reference backend's model: one call on it at a time
            return score_encoded(self._module, self._pad_id, encoded, plan, where, activation, self._phases)

    def _run(self, pairs: Sequence[Pair], batch_size: int, activation: Callable[[Any], Any] | None) -> np.ndarray:
        with self._phases.phase("tokenize"):
            encoded = self.encode(pairs)
        return self._scores(encoded, self.batches(pairs, [len(e) for e in encoded], batch_size), activation)

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        return self._run(pairs, batch_size, self.base.cross_encoder.activation_fn).astype(np.float32)

    def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        return self._run(pairs, batch_size, None)

    def predict_encoded(self, encoded: Sequence[Encoded], batch_size: int) -> np.ndarray:
        plan = self.batches([], [len(e) for e in encoded], batch_size)
        return self._scores(encoded, plan, self.base.cross_encoder.activation_fn).astype(np.float32)

    def batch_module(self) -> Any:
        return self._module

    def flop_config(self) -> Any:
        return self.base.flop_config()

    def truncating_at(self, max_length: int) -> AbstractContextManager[None]:
        return self.base.truncating_at(max_length)

    @contextlib.contextmanager
    def timed_phases(self, recorder: PhaseRecorder) -> Iterator[bool]:
        self._phases = recorder
        try:
            yield True
        finally:
            self._phases = NO_PHASES
