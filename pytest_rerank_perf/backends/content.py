"""Content hashes of a model directory: weights and tokenizer files, by their bytes, whatever the path is called.

Each hash is sha256 over the (file name, sha256 of its content) pairs of the files present, so a local folder, a
hub-cache snapshot of the same files and a twin's manifest (which records each file's sha256) agree. Symlinks are
followed as the hub cache lays them out (``snapshots/<rev>/<file> -> ../../blobs/<blob>``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .twin import sha256_file

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "tokenizer_config.json", "special_tokens_map.json")
_SHA256_NAME = re.compile(r"[0-9a-f]{64}")


def combined_hash(digests: Mapping[str, str]) -> str:
    """sha256 over ``name:sha256`` lines, in name order."""
    h = hashlib.sha256()
    for name in sorted(digests):
        h.update(f"{name}:{digests[name]}\n".encode())
    return h.hexdigest()


def hash_of_listed(files: Mapping[str, str], names: Iterable[str]) -> str:
    """The combined hash of the ``names`` present in a ``{file name: sha256}`` record (a twin's manifest)."""
    wanted = set(names)
    return combined_hash({name: digest for name, digest in files.items() if name in wanted})


def _weight_digest(file: Path) -> str:
    """A weight file's sha256. In the hub cache an LFS file's blob is named by its sha256: that saves reading it.
    Only a 64-hex blob name counts; a 40-hex one is a git blob id, not a content sha256."""
    target = file.resolve()
    if target.parent.name == "blobs" and _SHA256_NAME.fullmatch(target.name):
        return target.name
    return sha256_file(target)


def _shards(index: Path) -> set[str]:
    """The shard files a ``*.index.json`` names (an unreadable index names none; loading it fails clearly)."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(weight_map, dict):
        return set()
    return {str(name) for name in weight_map.values() if Path(str(name)).name == name}  # files beside the index


def weights_hash(path: Path) -> str:
    """Combined hash of the weight files present, including the shards an index names."""
    names = {name for name in WEIGHT_FILES if (path / name).is_file()}
    for index in [name for name in names if name.endswith(".index.json")]:
        names |= {shard for shard in _shards(path / index) if (path / shard).is_file()}
    return combined_hash({name: _weight_digest(path / name) for name in names})


def tokenizer_hash(path: Path) -> str:
    """Combined hash of the tokenizer files present, always by content (they are small, and not all are LFS)."""
    return combined_hash({name: sha256_file(path / name) for name in TOKENIZER_FILES if (path / name).is_file()})
