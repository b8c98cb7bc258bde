"""A real model's ``config.json``, read before any weights are loaded: what it is and how long its inputs may be.

A ``--rerank-max-length`` beyond the position table would crash on the first long pair (``index 514 is out of
bounds``) after a full model load; it is a usage error here instead, naming both numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError, UsageError
from .identity import BGE_ARCHITECTURE, Architecture
from .locate import broken_model_message
from .twin import BGE_RERANKER_V2_M3_MAX_LENGTH

# Models whose position ids start after padding_idx (RoBERTa's create_position_ids_from_input_ids): the first
# pad_token_id + 1 rows of the position table are never used for a token.
OFFSET_POSITION_MODELS = frozenset(
    {
        "camembert",
        "data2vec-text",
        "ibert",
        "longformer",
        "mpnet",
        "roberta",
        "roberta-prelayernorm",
        "xlm-roberta",
        "xlm-roberta-xl",
        "xmod",
    }
)
_ROBERTA_PAD_TOKEN_ID = 1  # XLMRobertaConfig's default when config.json leaves pad_token_id out


def read_model_config(path: Path, spec: str) -> dict[str, Any]:
    """``config.json`` of the model directory as a dict; a clear ``ModelNotFoundError`` when it is unusable."""
    file = path / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(broken_model_message(spec, f"{file} is not readable JSON ({exc})")) from None
    if not isinstance(config, dict):
        raise ModelNotFoundError(broken_model_message(spec, f"{file} holds a {type(config).__name__}, not an object"))
    _check_fields(config, file, spec)
    return config


def _check_fields(config: dict[str, Any], file: Path, spec: str) -> None:
    if not isinstance(config.get("model_type"), str):
        raise ModelNotFoundError(broken_model_message(spec, f"{file} has no model_type"))
    for field in ("max_position_embeddings", "pad_token_id"):
        value = config.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ModelNotFoundError(broken_model_message(spec, f"{file}: {field} {value!r} is not a count"))


def usable_positions(config: dict[str, Any]) -> int | None:
    """Tokens per input the position table allows (None when the config does not say)."""
    positions = config.get("max_position_embeddings")
    if positions is None:
        return None
    if config.get("model_type") in OFFSET_POSITION_MODELS:
        pad = config.get("pad_token_id")
        return int(positions) - (_ROBERTA_PAD_TOKEN_ID if pad is None else int(pad)) - 1
    return int(positions)


def check_max_length(max_length: int, config: dict[str, Any], architecture: Architecture, spec: str) -> None:
    """``max_length`` must fit the model: bge-reranker-v2-m3's 8192 tokens, or what any other position table allows."""
    usable = usable_positions(config)
    if architecture == BGE_ARCHITECTURE and max_length > BGE_RERANKER_V2_M3_MAX_LENGTH:
        usable = BGE_RERANKER_V2_M3_MAX_LENGTH
    if usable is None or max_length <= usable:
        return
    positions = config["max_position_embeddings"]
    reserved = f" (the first {positions - usable} are reserved: positions start after padding_idx)"
    raise UsageError(
        f"--rerank-max-length {max_length}: model {spec!r} has {positions} position embeddings"
        f"{reserved if positions != usable else ''}, so at most {usable} tokens per pair; "
        f"use --rerank-max-length {usable} or less."
    )
