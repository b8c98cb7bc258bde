"""Variants: configurations of the sentence-transformers backend measured on the same matrix and workload.

Each variant is a ``Reranker`` over the reference backend's loaded model (shared weights: no variant's memory shows
in another's figures). Its cells are keyed ``<workload>/bs<B>+<variant>`` in baselines, so the gate compares like
with like, and its scores are checked against ``predict``'s before its speed counts (``measurements/matrix.py``).

To add a variant: a maker here (``base, name -> Reranker``) and a line in ``VARIANTS``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from ..errors import UsageError
from ..machine import device as dev
from .base import Reranker
from .cross_encoder import CrossEncoderReranker
from .token_batched import TokenBatchedReranker

REFERENCE = "predict"
ATTENTION = ("eager", "sdpa", "flash_attention_2")


def _attention(base: CrossEncoderReranker, name: str) -> Reranker:
    kernel = name.split("=", 1)[1]
    return CrossEncoderReranker(base.cross_encoder, base.identity, base.device, variant=name, attention=kernel)


def _compiled(base: CrossEncoderReranker, name: str) -> Reranker:
    """Token-sorted batches through ``torch.compile`` (compiling ``predict``'s own module would change the shared
    model for every other variant)."""
    return TokenBatchedReranker(base, name, "sorted", compile_backend="inductor")


VARIANTS: dict[str, Callable[[CrossEncoderReranker, str], Reranker]] = {
    "token-sorted": lambda base, name: TokenBatchedReranker(base, name, "sorted"),
    "token-budget": lambda base, name: TokenBatchedReranker(base, name, "budget"),
    **{f"attn={kernel}": _attention for kernel in ATTENTION},
    "compile": _compiled,
}
CHOICES = ", ".join(VARIANTS)


def parse_variants(text: str) -> tuple[str, ...]:
    """``predict`` (always measured, first) and the named variants, in the order given, each once."""
    names = [n.strip() for n in (text or "").replace(",", " ").split() if n.strip()]
    for name in names:
        if name != REFERENCE and name not in VARIANTS:
            raise UsageError(f"--rerank-variants {name!r}: not a variant; use any of {REFERENCE}, {CHOICES}.")
        if name == "attn=flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise UsageError(
                "--rerank-variants attn=flash_attention_2: the flash-attn package is not installed "
                "(pip install flash-attn on a GPU machine), or drop the variant."
            )
    return tuple(dict.fromkeys([REFERENCE, *names]))


def _predict_only(names: list[str], backend: str) -> UsageError:
    return UsageError(
        f"--rerank-variants {','.join(names)}: variants are configurations of the sentence-transformers backend; "
        f"{backend} measures predict only."
    )


def check_variants(variants: tuple[str, ...], device: str, backend: str, dtype: str = "auto") -> None:
    """What only the run's device, backend and precision decide, said before anything is measured."""
    extra = [v for v in variants if v != REFERENCE]
    if extra and backend != "sentence-transformers":
        raise _predict_only(extra, f"--rerank-backend {backend}")
    gpu_only = [v for v in extra if v in ("compile", "attn=flash_attention_2")]
    if gpu_only and not dev.is_cuda(device):
        raise UsageError(
            f"--rerank-variants {','.join(gpu_only)}: measured on a GPU only (on the CPU torch.compile spends "
            "minutes per shape, and flash-attention has no CPU kernel); drop them on the CPU."
        )
    if "attn=flash_attention_2" in extra and dtype == "fp32":
        raise UsageError(
            "--rerank-variants attn=flash_attention_2 runs in fp16 or bf16 only: use --rerank-dtype fp16 (the "
            "GPU default), or drop the variant."
        )


def build_variant(base: Reranker, name: str) -> Reranker:
    """The reranker that measures variant ``name`` on ``base``'s model; ``predict`` is ``base`` itself."""
    if name == REFERENCE:
        return base
    parse_variants(name)  # a name that is no variant: the same message as the option gives
    if not isinstance(base, CrossEncoderReranker):
        raise _predict_only([name], f"this run's backend ({type(base).__name__})")
    return VARIANTS[name](base, name)
