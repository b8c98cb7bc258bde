"""The sentence-transformers ``CrossEncoder`` backend: real weights or an architecture twin, in one precision.

``load_model`` validates every argument, and a real model's ``config.json``, before anything heavy happens, so a typo
or a too-long ``max_length`` costs no model load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelNotFoundError, UsageError
from ..machine import device as dev
from ..validation import device_text, is_int
from ..workloads.batch_plans import Batches, predict_plan, sorted_plan
from .base import Pair
from .encoded import Encoded, encode, score_encoded
from .found import find_model
from .guards import exclusive
from .identity import ModelIdentity
from .locate import broken_model_message
from .model_config import check_max_length
from .phases import NO_PHASES, PhaseRecorder
from .precision import resolve_dtype, torch_dtype
from .twin import BGE_RERANKER_V2_M3_MAX_LENGTH, TWINS, quiet_progress_bars

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

DEFAULT_MAX_LENGTH = 512  # what FlagEmbedding and the model card use; the model accepts up to 8192
MODEL_CHOICES = "auto, twin, twin-tiny, a local model directory, or a hub id in the local Hugging Face cache"


@dataclass
class CrossEncoderReranker:
    """A loaded ``CrossEncoder`` (``.cross_encoder``) with its identity; implements ``Reranker``.

    ``predict`` is ``CrossEncoder.predict`` exactly as users call it. ``attention`` names the attention kernel the
    calls run with (None: as loaded); variants that change it share these weights (``backends/variants.py``), so
    each of their calls sets it and puts the loaded one back.

    Every call holds the lock of what it uses (``guards``): the model (its kernel switch included), then the
    tokenizer. ``encode`` (tokenizer only) and ``predict_encoded`` (model only) run side by side, as in the batcher;
    ``predict`` tokenizes, so it takes its turn with both."""

    cross_encoder: CrossEncoder
    identity: ModelIdentity
    device: str
    variant: str = "predict"
    attention: str | None = None

    def __post_init__(self) -> None:
        self._pad_id = self.cross_encoder.tokenizer.pad_token_id  # read once: the batcher's threads share the rest

    @property
    def tokenizer(self) -> Any:
        return self.cross_encoder.tokenizer

    @contextlib.contextmanager
    def _own_attention(self) -> Iterator[None]:
        """This call on ``attention``'s kernel, the shared model back on its own after it (even on an error)."""
        model: Any = self.cross_encoder.model
        loaded = model.config._attn_implementation
        if not self.attention or self.attention == loaded:
            yield
            return
        model.set_attn_implementation(self.attention)
        try:
            yield
        finally:
            model.set_attn_implementation(loaded)

    @contextlib.contextmanager
    def _tokenizing_call(self) -> Iterator[None]:
        """``CrossEncoder.predict`` runs the model and tokenizes: its turn with both, model first."""
        with exclusive(self.cross_encoder), exclusive(self.cross_encoder.tokenizer), self._own_attention():
            yield

    def predict(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        with self._tokenizing_call():
            out = self.cross_encoder.predict(list(pairs), batch_size=batch_size, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(len(pairs))

    def logits(self, pairs: Sequence[Pair], batch_size: int) -> np.ndarray:
        import torch

        with self._tokenizing_call():
            out = self.cross_encoder.predict(
                list(pairs), batch_size=batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False
            )
        return np.asarray(out, dtype=np.float64).reshape(len(pairs))

    def batches(self, pairs: Sequence[Pair], lengths: Sequence[int], batch_size: int) -> Batches:
        return predict_plan(pairs, batch_size)

    @property
    def max_length(self) -> int:
        """Where pairs are cut now (``truncating_at`` moves it)."""
        return self.cross_encoder.max_seq_length or self.identity.max_length

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        with exclusive(self.tokenizer):
            return encode(self.tokenizer, pairs, self.max_length)

    def predict_encoded(self, encoded: Sequence[Encoded], batch_size: int) -> np.ndarray:
        """Scores of pairs tokenized by ``encode``: token-sorted batches of ``batch_size``, no second tokenization."""
        plan = sorted_plan([len(e) for e in encoded], batch_size)
        forward = self.batch_module()
        with exclusive(self.cross_encoder), self._own_attention():
            scores = score_encoded(
                lambda f: forward({**f, "modality": "text"})["scores"],
                self._pad_id,
                encoded,
                plan,
                str(self.cross_encoder.device),  # where the weights are, as predict moves its batches
                self.cross_encoder.activation_fn,
                NO_PHASES,
            )
        return scores.astype(np.float32)

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

    @contextlib.contextmanager
    def timed_phases(self, recorder: PhaseRecorder) -> Iterator[bool]:
        """``predict``'s tokenization (``preprocess``: tokenize and pad) and its ``batch_to_device`` copies, reported
        to ``recorder``: both are wrapped for the block and restored after it."""
        from sentence_transformers.cross_encoder import model as st_model

        ce, to_device = self.cross_encoder, st_model.batch_to_device
        preprocess = ce.preprocess

        def timed_preprocess(*args: Any, **kwargs: Any) -> Any:
            with recorder.phase("tokenize"):
                return preprocess(*args, **kwargs)

        def timed_to_device(*args: Any, **kwargs: Any) -> Any:
            with recorder.phase("h2d"):
                return to_device(*args, **kwargs)

        ce.preprocess = timed_preprocess  # type: ignore[method-assign]
        st_model.batch_to_device = timed_to_device
        try:
            yield True
        finally:
            del ce.preprocess  # the instance attribute: the class's method shows through again
            st_model.batch_to_device = to_device


def resolve_model_spec(spec: str, device: str) -> str:
    """``auto`` means the full twin on a GPU and the tiny twin on a CPU: real weights only when named."""
    spec = (spec or "auto").strip()
    if spec == "auto":
        return "twin" if dev.is_cuda(device) else "twin-tiny"
    return spec


def validate_max_length(max_length: int, model: str = "auto") -> int:
    """The value alone, before any model is found. bge-reranker-v2-m3's limit applies at once to the twins (and
    ``auto``, a twin); a real model's own limit is checked against its ``config.json`` when it is found."""
    if not is_int(max_length) or max_length < 8:
        raise UsageError(f"--rerank-max-length {max_length!r}: use an integer of at least 8 (tokens).")
    if (model.strip() or "auto") in ("auto", *TWINS) and max_length > BGE_RERANKER_V2_M3_MAX_LENGTH:
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
    resolved = resolve_model_spec(spec, resolved_device)
    validate_max_length(max_length, resolved)
    found = find_model(resolved, cache_dir)
    check_max_length(max_length, found.config, found.architecture, resolved)
    cross_encoder = _construct(found.path, resolved, resolved_device, canonical_dtype, max_length)
    identity = found.identity(canonical_dtype, max_length, _parameters(cross_encoder))
    return CrossEncoderReranker(cross_encoder=cross_encoder, identity=identity, device=resolved_device)


def _construct(path: Path, spec: str, device: str, dtype: str, max_length: int) -> CrossEncoder:
    """The ``CrossEncoder`` itself; a directory it cannot load is one clear ``ModelNotFoundError``."""
    from safetensors import SafetensorError
    from sentence_transformers import CrossEncoder

    try:
        with quiet_progress_bars():
            return CrossEncoder(
                str(path),
                device=dev.placement(device),
                local_files_only=True,
                max_length=max_length,
                model_kwargs={"dtype": torch_dtype(dtype)},
            )
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        if dev.is_oom(exc):
            raise
        where = "it" if Path(spec).expanduser().resolve() == path.resolve() else str(path)  # a hub id: the snapshot
        raise ModelNotFoundError(broken_model_message(spec, f"{where} does not load ({_short(exc)})")) from None


def _parameters(cross_encoder: CrossEncoder) -> int:
    model = cross_encoder.model
    return 0 if model is None else sum(int(p.numel()) for p in model.parameters())


def _short(exc: BaseException) -> str:
    """The loader's first line, without the hub's download hints (this tool never downloads)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if "ignore_mismatched_sizes" in text:
        text = "the weights' shapes do not match config.json"
    for hint in ("local_files_only", "huggingface.co", "If you were trying to load"):
        text = text.split(hint)[0] if hint in text else text
    return f"{type(exc).__name__}: {text.strip()}" if text.strip() else type(exc).__name__
