"""The sentence-transformers ``CrossEncoder`` backend: real weights or an architecture twin, in one precision.

``load_model`` validates every argument before anything heavy happens, so a typo costs no model load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import device as dev
from ..errors import UsageError
from ..twin import BGE_RERANKER_V2_M3_MAX_LENGTH, TWINS, ensure_twin, quiet_progress_bars, read_manifest
from ..validation import device_text, is_int
from .base import Pair
from .identity import ModelIdentity, Source, config_hash, weights_hash
from .locate import check_model_dir, locate_real_model
from .precision import resolve_dtype, torch_dtype

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

DEFAULT_MAX_LENGTH = 512  # what FlagEmbedding and the model card use; the model accepts up to 8192
MODEL_CHOICES = "auto, twin, twin-tiny, a local model directory, or a hub id in the local Hugging Face cache"


@dataclass
class CrossEncoderReranker:
    """A loaded ``CrossEncoder`` (``.cross_encoder``) with its identity; implements ``Reranker``."""

    cross_encoder: CrossEncoder
    identity: ModelIdentity
    device: str

    @property
    def tokenizer(self) -> Any:
        return self.cross_encoder.tokenizer

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        out = self.cross_encoder.predict(list(pairs), batch_size=batch_size, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(len(pairs))

    def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        import torch

        out = self.cross_encoder.predict(
            list(pairs), batch_size=batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float64).reshape(len(pairs))

    def batch_module(self) -> Any:
        return self.cross_encoder[0]  # the Transformer module: one forward per batch

    def flop_config(self) -> Any:
        return getattr(self.cross_encoder.model, "config", None)

    @contextlib.contextmanager
    def truncating_at(self, max_length: int) -> Iterator[None]:
        old = self.cross_encoder.max_seq_length
        self.cross_encoder.max_seq_length = max_length
        try:
            yield
        finally:
            self.cross_encoder.max_seq_length = old


def resolve_model_spec(spec: str, device: str) -> str:
    """``auto`` means the full twin on a GPU and the tiny twin on a CPU: real weights only when named."""
    spec = (spec or "auto").strip()
    if spec == "auto":
        return "twin" if dev.is_cuda(device) else "twin-tiny"
    return spec


def validate_max_length(max_length: int) -> int:
    if not is_int(max_length) or max_length < 8:
        raise UsageError(f"--rerank-max-length {max_length!r}: use an integer of at least 8 (tokens).")
    if max_length > BGE_RERANKER_V2_M3_MAX_LENGTH:
        raise UsageError(
            f"--rerank-max-length {max_length}: the model has {BGE_RERANKER_V2_M3_MAX_LENGTH} positions; "
            f"use at most {BGE_RERANKER_V2_M3_MAX_LENGTH}."
        )
    return max_length


def load_model(
    spec: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    max_length: int = DEFAULT_MAX_LENGTH,
    cache_dir: Path | None = None,
) -> CrossEncoderReranker:
    """Load a ``CrossEncoder`` (real weights or a twin) in the requested precision, with its identity."""
    resolved_device = dev.resolve(device_text(device))
    canonical_dtype = resolve_dtype(dtype, resolved_device)
    validate_max_length(max_length)
    resolved = resolve_model_spec(spec, resolved_device)

    source: Source
    if resolved in TWINS:
        twin = TWINS[resolved]
        path = ensure_twin(twin, cache_dir)
        name, source, weights = twin.name, "twin", str(read_manifest(path)["weights_sha256"])
    else:
        path, name = locate_real_model(resolved)
        check_model_dir(path, resolved)
        source, weights = "real", weights_hash(path)

    from sentence_transformers import CrossEncoder

    with quiet_progress_bars():
        cross_encoder = CrossEncoder(
            str(path),
            device=dev.placement(resolved_device),
            local_files_only=True,
            max_length=max_length,
            model_kwargs={"dtype": torch_dtype(canonical_dtype)},
        )
    hf_model = cross_encoder.model
    identity = ModelIdentity(
        name=name,
        source=source,
        config_hash=config_hash(hf_model.config.to_dict()),
        weights_hash=weights,
        dtype=canonical_dtype,
        max_length=max_length,
        parameters=sum(p.numel() for p in hf_model.parameters()),
        path=str(path),
    )
    return CrossEncoderReranker(cross_encoder=cross_encoder, identity=identity, device=resolved_device)
