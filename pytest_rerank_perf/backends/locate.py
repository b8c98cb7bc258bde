"""Finding real weights on this machine: a local directory, or a hub id already in the local Hugging Face cache.

This tool never downloads weights; a missing model gets one message that names every way to provide it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ModelNotFoundError
from .content import WEIGHT_FILES

REAL_HUB_ID = "BAAI/bge-reranker-v2-m3"
_TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model")  # either one is enough to build the tokenizer
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name, as the hub spells repo ids


def missing_model_message(spec: str, detail: str) -> str:
    return (
        f"Model {spec!r} not found: {detail}.\n"
        "This tool never downloads weights. Either\n"
        f"  - copy the model directory (config.json, model.safetensors, tokenizer files) to this machine and pass "
        "--rerank-model /path/to/dir, or\n"
        f"  - on a machine with hub access run `hf download {REAL_HUB_ID}` and copy the Hugging Face cache "
        "(HF_HOME, default ~/.cache/huggingface) here, or\n"
        "  - measure the architecture twin instead: --rerank-model twin (same speed and memory as the real model "
        "at equal token lengths; scores are meaningless)."
    )


def broken_model_message(spec: str, detail: str) -> str:
    return (
        f"Model {spec!r} cannot be used: {detail}.\n"
        "Copy the complete model directory again (config.json, weights and tokenizer files of one model) and pass "
        "--rerank-model /path/to/dir, or measure the architecture twin instead: --rerank-model twin."
    )


def hf_hub_cache() -> str:
    """The hub cache directory, read from the environment now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def locate_real_model(spec: str) -> tuple[Path, str]:
    """(directory, display name) for a local directory or a hub id already in the local HF cache."""
    path = Path(spec).expanduser()
    if path.exists() or not _HUB_ID.fullmatch(spec):
        if not path.is_dir():
            raise ModelNotFoundError(missing_model_message(spec, f"{path} is not a directory"))
        return path.resolve(), path.resolve().name
    from huggingface_hub import snapshot_download

    cache = hf_hub_cache()
    try:
        snapshot = snapshot_download(spec, local_files_only=True, cache_dir=cache)
    except Exception as exc:  # the hub raises several types for "not cached"; all mean the same here
        # ``from None``: the hub's own text (its local_files_only hint) would contradict "never downloads".
        raise ModelNotFoundError(
            missing_model_message(spec, f"not in the local Hugging Face cache {cache} ({type(exc).__name__})")
        ) from None
    return Path(snapshot), spec


def check_model_dir(path: Path, spec: str) -> None:
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(missing_model_message(spec, f"{path} has no config.json"))
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelNotFoundError(missing_model_message(spec, f"{path} has no weights ({', '.join(WEIGHT_FILES)})"))
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelNotFoundError(
            missing_model_message(spec, f"{path} has no tokenizer ({' or '.join(_TOKENIZER_FILES)})")
        )
