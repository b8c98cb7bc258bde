"""Model backends: everything the harness measures is a ``Reranker``.

To add a backend, write one module here that implements ``Reranker`` (``base.py``) and a loader with
``load_model``'s signature, and name the loader in ``LOADERS``; ``--rerank-backend NAME`` then selects it.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Pair, Reranker
from .cross_encoder import DEFAULT_MAX_LENGTH, MODEL_CHOICES, CrossEncoderReranker, load_model
from .identity import ModelIdentity

Loader = Callable[..., Reranker]

LOADERS: dict[str, Loader] = {
    "sentence-transformers": load_model,
}
DEFAULT_BACKEND = "sentence-transformers"

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_MAX_LENGTH",
    "LOADERS",
    "MODEL_CHOICES",
    "CrossEncoderReranker",
    "Loader",
    "ModelIdentity",
    "Pair",
    "Reranker",
    "load_model",
]
