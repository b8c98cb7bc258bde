"""Scoring pairs that are already tokenized: encode once, then run batches of token ids through the model.

``CrossEncoder.predict`` tokenizes inside every call; the token-batched variants and the dynamic batcher tokenize
once (``encode``) and hand token ids to ``score_encoded``, which pads each batch to its longest pair, copies it to
the device, runs the model and applies the activation, exactly as ``predict`` does after its own tokenization
(same truncation, same pair template: ``tests/test_variants.py`` checks the ids and the scores).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..workloads.batch_plans import Batches
from ..workloads.pairs import Pair
from .phases import PhaseRecorder

Encoded = tuple[int, ...]  # a pair's input ids, truncated as the model sees them


def encode(tokenizer: Any, pairs: Sequence[Pair], max_length: int) -> list[Encoded]:
    """Input ids of each pair, as ``predict`` would build them (``longest_first`` truncation at ``max_length``)."""
    if not pairs:
        return []
    out = tokenizer(
        [q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first", max_length=max_length, verbose=False
    )
    return [tuple(ids) for ids in out["input_ids"]]


def padded(encoded: Sequence[Encoded], batch: Sequence[int], pad_id: int) -> dict[str, Any]:
    """A batch padded on the right to its longest pair, as the tokenizer pads for XLM-R. Built here rather than by
    ``tokenizer.pad``: the batcher tokenizes in another thread, and a fast tokenizer is not safe to share."""
    import torch

    longest = max(len(encoded[i]) for i in batch)
    ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, i in enumerate(batch):
        ids[row, : len(encoded[i])] = torch.tensor(encoded[i], dtype=torch.long)
        mask[row, : len(encoded[i])] = 1
    return {"input_ids": ids, "attention_mask": mask}


def score_encoded(
    forward: Callable[[dict[str, Any]], Any],
    pad_id: int,
    encoded: Sequence[Encoded],
    batches: Batches,
    device: str,
    activation: Callable[[Any], Any] | None,
    phases: PhaseRecorder,
) -> np.ndarray:
    """Scores (float64, input order) of ``encoded`` run as ``batches``; ``forward(features)`` returns the logits of
    one padded batch. Scores stay on the device until the end: one copy back, as ``predict`` does."""
    import torch

    if not encoded:
        return np.empty(0, dtype=np.float64)
    outs = []
    with torch.inference_mode():
        for batch in batches:
            features = padded(encoded, batch, pad_id)
            with phases.phase("h2d"):
                on_device = {k: v.to(device) for k, v in features.items()}
            logits = forward(on_device).float().reshape(len(batch), -1)[:, 0]
            outs.append(activation(logits) if activation is not None else logits)
        order = torch.as_tensor([i for batch in batches for i in batch], device=outs[0].device)
        scores = torch.empty(len(encoded), dtype=outs[0].dtype, device=outs[0].device)
        scores[order] = torch.cat(outs)
        return scores.cpu().numpy().astype(np.float64)
