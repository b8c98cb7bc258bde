"""What a result was measured on: the model identity that keys every baseline.

A twin result must never be compared with a real-weights baseline, nor an fp16 run with a bf16 one, nor
max_length 512 with 1024: every field of ``key()`` must match for two runs to be comparable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..twin import sha256_file

Source = Literal["real", "twin", "standin"]

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
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    source: Source
    config_hash: str
    weights_hash: str | None
    dtype: str  # canonical: fp32 | fp16 | bf16
    max_length: int
    parameters: int
    path: str

    def key(self) -> str:
        """Baseline key part: runs are only comparable when every field here matches."""
        return f"{self.source}:{self.name}:{self.config_hash[:12]}:{self.dtype}:L{self.max_length}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_hash(config: dict[str, Any]) -> str:
    arch = {key: config.get(key, _ARCHITECTURE_DEFAULTS.get(key)) for key in ARCHITECTURE_KEYS}
    arch["num_labels"] = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    return hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()


def weights_hash(path: Path) -> str:
    """sha256 over the weight files. In the HF cache a file's blob is named by its sha256, which saves reading it."""
    h = hashlib.sha256()
    for name in WEIGHT_FILES:
        file = path / name
        if not file.is_file():
            continue
        target = file.resolve()
        digest = target.name if len(target.name) == 64 and target.parent.name == "blobs" else sha256_file(target)
        h.update(f"{name}:{digest}\n".encode())
    return h.hexdigest()
