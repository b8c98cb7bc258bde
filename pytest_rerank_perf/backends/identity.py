"""What a result was measured on: the model identity that keys every baseline.

The key follows content, never how the model was named: the weights, the architecture config and the tokenizer
(their hashes), the dtype and max_length, and the source (a twin never compares with real weights). The same files
as a local folder, a hub id or a snapshot path give one key; two fine-tunes in same-named folders give two.
``name`` and ``path`` are for display only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .twin import BGE_RERANKER_V2_M3_CONFIG

Source = Literal["real", "twin", "standin"]
Architecture = Literal["bge-reranker-v2-m3", "custom"]
BGE_ARCHITECTURE: Architecture = "bge-reranker-v2-m3"

# Fields that decide shapes and arithmetic; everything else in config.json (ids, dropout, versions, init range)
# changes neither speed nor memory and stays out of the hash.
ARCHITECTURE_KEYS = (
    "architectures",
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
    "pad_token_id",
    "layer_norm_eps",
    "position_embedding_type",
)
_ARCHITECTURE_DEFAULTS = {"position_embedding_type": "absolute"}  # transformers 5 no longer writes this field


@dataclass(frozen=True)
class ModelIdentity:
    name: str  # display only: a folder name or hub id, not part of the key
    source: Source
    config_hash: str
    weights_hash: str | None
    dtype: str  # canonical: fp32 | fp16 | bf16
    max_length: int
    parameters: int
    path: str  # display only
    tokenizer_hash: str | None = None
    architecture: Architecture = "custom"

    def content_digest(self) -> str:
        """sha256 over the weights, architecture config and tokenizer hashes: what was measured, by content."""
        parts = (
            f"weights:{self.weights_hash or '-'}",
            f"config:{self.config_hash}",
            f"tokenizer:{self.tokenizer_hash or '-'}",
        )
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def key(self) -> str:
        """Baseline key part: runs are only comparable when every field here matches."""
        return f"{self.source}:{self.architecture}:{self.content_digest()[:16]}:{self.dtype}:L{self.max_length}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_hash(config: dict[str, Any]) -> str:
    arch = {key: config.get(key, _ARCHITECTURE_DEFAULTS.get(key)) for key in ARCHITECTURE_KEYS}
    arch["num_labels"] = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    return hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()


BGE_CONFIG_HASH = config_hash(BGE_RERANKER_V2_M3_CONFIG)


def architecture_of(config: dict[str, Any]) -> Architecture:
    """``bge-reranker-v2-m3`` when every architecture field matches the real model's config, else ``custom``."""
    return BGE_ARCHITECTURE if config_hash(config) == BGE_CONFIG_HASH else "custom"
