"""A model found on this machine, before its weights are loaded: its directory, config.json and content hashes.

Everything its identity needs except the parameter count is known here, so the key of a model can be computed (and
tested) without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .content import TOKENIZER_FILES, WEIGHT_FILES, hash_of_listed, tokenizer_hash, weights_hash
from .identity import Architecture, ModelIdentity, Source, architecture_of, config_hash
from .locate import check_model_dir, locate_real_model
from .model_config import read_model_config
from .twin import TWINS, ensure_twin, read_manifest


@dataclass(frozen=True)
class FoundModel:
    path: Path
    name: str  # display only
    source: Source
    config: dict[str, Any]
    weights_hash: str
    tokenizer_hash: str

    @property
    def architecture(self) -> Architecture:
        return architecture_of(self.config)

    def identity(self, dtype: str, max_length: int, parameters: int) -> ModelIdentity:
        return ModelIdentity(
            name=self.name,
            source=self.source,
            config_hash=config_hash(self.config),
            weights_hash=self.weights_hash,
            dtype=dtype,
            max_length=max_length,
            parameters=parameters,
            path=str(self.path),
            tokenizer_hash=self.tokenizer_hash,
            architecture=self.architecture,
        )


def find_model(spec: str, cache_dir: Path | None = None) -> FoundModel:
    """A twin (built into ``cache_dir`` if needed), a local directory, or a hub id in the local HF cache."""
    if spec in TWINS:
        twin = TWINS[spec]
        path = ensure_twin(twin, cache_dir)
        files = read_manifest(path)["files"]  # each file's sha256, recorded when the twin was built
        weights, tokenizer = hash_of_listed(files, WEIGHT_FILES), hash_of_listed(files, TOKENIZER_FILES)
        return FoundModel(path, twin.name, "twin", twin.model_config(), weights, tokenizer)
    path, name = locate_real_model(spec)
    check_model_dir(path, spec)
    config = read_model_config(path, spec)
    return FoundModel(path, name, "real", config, weights_hash(path), tokenizer_hash(path))
