"""Model loading: one entry point for real weights and the architecture twins, and the identity of what loaded.

``ModelIdentity`` is part of every baseline key: a twin result must never be compared with a real-weights
baseline, nor an fp16 run with a bf16 one, nor max_length 512 with 1024.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import DeviceError, ModelNotFoundError, UsageError
from .twin import BGE_RERANKER_V2_M3_MAX_LENGTH, TWINS, ensure_twin, quiet_progress_bars, read_manifest, sha256_file

if TYPE_CHECKING:
    import torch
    from sentence_transformers import CrossEncoder

REAL_HUB_ID = "BAAI/bge-reranker-v2-m3"
DEFAULT_MAX_LENGTH = 512  # what FlagEmbedding and the model card use; the model accepts up to 8192

DTYPE_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
}  # fmt: skip
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
MODEL_CHOICES = "auto, twin, twin-tiny, a local model directory, or a hub id in the local Hugging Face cache"

# Fields that decide shapes and arithmetic; everything else in config.json (ids, dropout, versions, init range)
# changes neither speed nor memory and stays out of the hash.
ARCHITECTURE_KEYS = (
    "architectures", "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "vocab_size", "max_position_embeddings", "type_vocab_size", "pad_token_id", "layer_norm_eps",
    "position_embedding_type",
)  # fmt: skip
_ARCHITECTURE_DEFAULTS = {"position_embedding_type": "absolute"}  # transformers 5 no longer writes this field
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name, as the hub spells repo ids


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    source: Literal["real", "twin"]
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


@dataclass
class LoadedModel:
    cross_encoder: CrossEncoder
    identity: ModelIdentity
    device: str

    @property
    def tokenizer(self) -> Any:
        return self.cross_encoder.tokenizer


def config_hash(config: dict[str, Any]) -> str:
    arch = {key: config.get(key, _ARCHITECTURE_DEFAULTS.get(key)) for key in ARCHITECTURE_KEYS}
    arch["num_labels"] = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    return hashlib.sha256(json.dumps(arch, sort_keys=True).encode()).hexdigest()


def resolve_device(device: str) -> str:
    """Canonical device string; a clear error when CUDA is asked for but absent."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        index_text = device.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise UsageError(f"--rerank-device {device!r}: the CUDA index must be a number (cuda:0)")
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--rerank-device {device} asked for a GPU, but torch sees no CUDA device "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). "
                "Run on a GPU machine with a CUDA build of torch, or use --rerank-device cpu."
            )
        index = int(index_text)
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"--rerank-device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible "
                "(check CUDA_VISIBLE_DEVICES)."
            )
        return f"cuda:{index}"
    raise UsageError(f"--rerank-device {device!r} is not a device; use {DEVICE_CHOICES}.")


def resolve_dtype(dtype: str, device: str) -> str:
    """fp16 on CUDA and fp32 on CPU unless told otherwise."""
    name = (dtype or "auto").strip().lower()
    if name == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if name not in DTYPE_ALIASES:
        raise UsageError(f"--rerank-dtype {dtype!r} is not a precision; use auto, fp32, fp16 or bf16.")
    canonical = DTYPE_ALIASES[name]
    if canonical == "bf16" and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_bf16_supported():
            raise DeviceError(f"--rerank-dtype bf16: {device} does not support bfloat16; use fp16.")
    return canonical


def torch_dtype(canonical: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[canonical]


def resolve_model_spec(spec: str, device: str) -> str:
    """``auto`` means the full twin on a GPU and the tiny twin on a CPU: real weights only when named."""
    spec = (spec or "auto").strip()
    if spec == "auto":
        return "twin" if device.startswith("cuda") else "twin-tiny"
    return spec


def validate_max_length(max_length: int) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 8:
        raise UsageError(f"--rerank-max-length {max_length!r}: use an integer of at least 8 (tokens).")
    if max_length > BGE_RERANKER_V2_M3_MAX_LENGTH:
        raise UsageError(
            f"--rerank-max-length {max_length}: the model has {BGE_RERANKER_V2_M3_MAX_LENGTH} positions; "
            f"use at most {BGE_RERANKER_V2_M3_MAX_LENGTH}."
        )
    return max_length


def _missing_model_message(spec: str, detail: str) -> str:
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


def locate_real_model(spec: str) -> tuple[Path, str]:
    """(directory, display name) for a local directory or a hub id already in the local HF cache."""
    path = Path(spec).expanduser()
    if path.exists() or not _HUB_ID.fullmatch(spec):
        if not path.is_dir():
            raise ModelNotFoundError(_missing_model_message(spec, f"{path} is not a directory"))
        return path.resolve(), path.resolve().name
    from huggingface_hub import snapshot_download

    cache = hf_hub_cache()
    try:
        snapshot = snapshot_download(spec, local_files_only=True, cache_dir=cache)
    except Exception as exc:  # the hub raises several types for "not cached"; all mean the same here
        raise ModelNotFoundError(
            _missing_model_message(spec, f"not in the local Hugging Face cache {cache} ({type(exc).__name__})")
        ) from exc
    return Path(snapshot), spec


def hf_hub_cache() -> str:
    """The hub cache directory, read from the environment now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def check_model_dir(path: Path, spec: str) -> None:
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(_missing_model_message(spec, f"{path} has no config.json"))
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise ModelNotFoundError(_missing_model_message(spec, f"{path} has no weights ({', '.join(_WEIGHT_FILES)})"))
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelNotFoundError(
            _missing_model_message(spec, f"{path} has no tokenizer ({' or '.join(_TOKENIZER_FILES)})")
        )


def weights_hash(path: Path) -> str:
    """sha256 over the weight files. In the HF cache a file's blob is named by its sha256, which saves reading it."""
    h = hashlib.sha256()
    for name in _WEIGHT_FILES:
        file = path / name
        if not file.is_file():
            continue
        target = file.resolve()
        digest = target.name if len(target.name) == 64 and target.parent.name == "blobs" else sha256_file(target)
        h.update(f"{name}:{digest}\n".encode())
    return h.hexdigest()


def load_model(
    spec: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    max_length: int = DEFAULT_MAX_LENGTH,
    cache_dir: Path | None = None,
) -> LoadedModel:
    """Load a ``CrossEncoder`` (real weights or a twin) in the requested precision, with its identity.

    Every argument is validated before anything heavy happens, so a typo costs no model load.
    """
    resolved_device = resolve_device(device)
    canonical_dtype = resolve_dtype(dtype, resolved_device)
    validate_max_length(max_length)
    resolved = resolve_model_spec(spec, resolved_device)

    weights: str | None
    if resolved in TWINS:
        twin = TWINS[resolved]
        path = ensure_twin(twin, cache_dir)
        manifest = read_manifest(path)
        name, source, weights = twin.name, "twin", str(manifest["weights_sha256"])
    else:
        path, name = locate_real_model(resolved)
        check_model_dir(path, resolved)
        source, weights = "real", weights_hash(path)

    from sentence_transformers import CrossEncoder

    with quiet_progress_bars():
        cross_encoder = CrossEncoder(
            str(path),
            device=resolved_device,
            local_files_only=True,
            max_length=max_length,
            model_kwargs={"dtype": torch_dtype(canonical_dtype)},
        )
    hf_model = cross_encoder.model
    identity = ModelIdentity(
        name=name,
        source=source,  # type: ignore[arg-type]
        config_hash=config_hash(hf_model.config.to_dict()),
        weights_hash=weights,
        dtype=canonical_dtype,
        max_length=max_length,
        parameters=sum(p.numel() for p in hf_model.parameters()),
        path=str(path),
    )
    return LoadedModel(cross_encoder=cross_encoder, identity=identity, device=resolved_device)
