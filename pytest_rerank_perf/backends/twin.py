"""The architecture twin: bge-reranker-v2-m3's exact architecture with seeded random weights.

No model weights can be downloaded here, so the suite measures a twin. Speed and memory of a dense transformer
depend on its shapes, the dtype and the token counts, not on the weight values, so the full twin runs exactly as
fast and as large as the real model at equal token lengths. Its scores mean nothing.

Everything is built locally and deterministically (same bytes on every build with the same library versions):
- the tokenizer is an XLM-R Unigram tokenizer whose vocabulary is *enumerated* (specials, characters of several
  scripts, the built-in lexicon, generated syllables) rather than trained, because ``tokenizers``'
  UnigramTrainer is not deterministic run to run;
- the weights come from the CPU generator seeded inside a forked RNG, so the caller's RNG is untouched. Not
  ``torch.manual_seed``: it also reseeds every CUDA generator, which ``fork_rng(devices=[])`` does not restore.

Built twins are cached on disk, keyed by config + seed + vocabulary + builder version. A build happens in a
temporary sibling directory renamed into place, so a crashed or concurrent build never leaves a half-written twin.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RerankPerfError
from ..workloads.lexicon import CJK_WORDS, LATIN_WORDS

# Bump when the bytes a build produces change for the same spec (vocabulary recipe, file layout, init).
BUILDER_VERSION = 1

MANIFEST = "twin.json"
SPM_SPACE = "\u2581"  # SentencePiece's word-boundary marker

# config.json of BAAI/bge-reranker-v2-m3, field for field, except initializer_range (see TwinSpec).
BGE_RERANKER_V2_M3_CONFIG: dict[str, Any] = {
    "architectures": ["XLMRobertaForSequenceClassification"],
    "model_type": "xlm-roberta",
    "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0,
    "classifier_dropout": None,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 1024,
    "id2label": {"0": "LABEL_0"},
    "label2id": {"LABEL_0": 0},
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 8194,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "pad_token_id": 1,
    "position_embedding_type": "absolute",
    "type_vocab_size": 1,
    "use_cache": True,
    "vocab_size": 250002,
}
BGE_RERANKER_V2_M3_PARAMETERS = 567_755_777
BGE_RERANKER_V2_M3_MAX_LENGTH = 8192  # tokenizer model_max_length of the real model


@dataclass(frozen=True)
class TwinSpec:
    """What to build. ``config`` overrides fields of the real config (empty for the full twin)."""

    name: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    # 0.2 rather than the real 0.02: with 0.02 every score collapses to ~0.5 and score-invariance checks prove
    # nothing. initializer_range is a training-time field; it changes neither shapes, speed nor memory.
    initializer_range: float = 0.2
    # Characters of all supported scripts (full twin) or only those of the built-in lexicon (tiny twin).
    full_charset: bool = True

    def model_config(self) -> dict[str, Any]:
        cfg = dict(BGE_RERANKER_V2_M3_CONFIG)
        cfg.update(self.config)
        cfg["initializer_range"] = self.initializer_range
        return cfg

    @property
    def vocab_size(self) -> int:
        return int(self.model_config()["vocab_size"])

    def cache_key(self) -> str:
        payload = {
            "builder": BUILDER_VERSION,
            "config": self.model_config(),
            "seed": self.seed,
            "full_charset": self.full_charset,
            # the lexicon feeds the vocabulary: editing it must not reuse twins built from the old one
            "lexicon": hashlib.sha256("\n".join((*LATIN_WORDS, *CJK_WORDS)).encode()).hexdigest(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


FULL_TWIN = TwinSpec(
    name="bge-reranker-v2-m3-twin",
    description="full-size architecture twin of BAAI/bge-reranker-v2-m3 (random weights)",
)
TINY_TWIN = TwinSpec(
    name="bge-reranker-v2-m3-tiny-twin",
    description="tiny twin: same architecture family, 2 layers x 64 hidden, for CPU tests only",
    config={
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "vocab_size": 8002,
    },
    full_charset=False,
)
TWINS: dict[str, TwinSpec] = {"twin": FULL_TWIN, "twin-tiny": TINY_TWIN}


# --- vocabulary -------------------------------------------------------------------------------------------------

_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
_MASK = "<mask>"
_ONSETS = ("", *"b c d f g h j k l m n p r s t v w z br ch st tr pl sh th".split())
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "y")
_CODAS = ("", "n", "r", "s", "t", "l", "m", "k", "nd", "st")


def _charset(full: bool) -> list[str]:
    """Characters that always have a piece, so no supported text maps to <unk>."""
    ranges = [(0x21, 0x7E), (0xC0, 0xFF)]
    if full:
        ranges += [
            (0x391, 0x3C9),  # Greek
            (0x410, 0x44F),  # Cyrillic
            (0x3041, 0x3096),  # Hiragana
            (0x30A1, 0x30FA),  # Katakana
            (0x4E00, 0x9FFF),  # CJK unified ideographs
            (0xAC00, 0xD7A3),  # Hangul syllables
        ]
    chars = {chr(c) for lo, hi in ranges for c in range(lo, hi + 1) if chr(c).isprintable()}
    chars.discard("\u00d7")
    chars.discard("\u00f7")
    chars.update(ch for word in (*LATIN_WORDS, *CJK_WORDS) for ch in word)
    return sorted(chars)


def _syllable_pieces() -> Iterator[str]:
    """An endless, fixed sequence of pronounceable pieces: single syllables, then pairs, then triples."""
    syllables = [o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS]
    for k in itertools.count(1):
        for combo in itertools.product(syllables, repeat=k):
            yield "".join(combo)


def build_vocab(vocab_size: int, full_charset: bool) -> list[tuple[str, float]]:
    """The (piece, log-probability) list of the twin's Unigram model, in id order.

    Ids 0-3 and the last id are XLM-R's special tokens (<s> <pad> </s> <unk> ... <mask>). Scores make whole words
    beat syllables beat single characters, like a trained model's would.
    """
    pieces: list[tuple[str, float]] = [(tok, 0.0) for tok in _SPECIALS]
    seen = set(_SPECIALS) | {_MASK}

    def add(piece: str, score: float) -> None:
        if piece not in seen and len(pieces) < vocab_size - 1:
            seen.add(piece)
            pieces.append((piece, score))

    add(SPM_SPACE, -16.0)
    for ch in _charset(full_charset):
        add(SPM_SPACE + ch, -17.5)
        add(ch, -18.0)
    words = sorted(set(LATIN_WORDS) | set(CJK_WORDS))
    for i, word in enumerate(words):
        add(SPM_SPACE + word, round(-7.0 - i * 1e-3, 6))
    if len(pieces) >= vocab_size - 1:
        raise ValueError(f"vocab_size {vocab_size} is too small for the twin's base vocabulary")
    free = vocab_size - 1 - len(pieces)
    for i, piece in enumerate(_syllable_pieces()):
        if len(pieces) >= vocab_size - 1:
            break
        score = round(-9.0 - 5.0 * (i // 2) / free, 6)
        # Alternate word-initial and word-internal forms so both kinds exist in every vocabulary size.
        add(SPM_SPACE + piece if i % 2 == 0 else piece, score)
    pieces.append((_MASK, 0.0))
    return pieces


# --- building and caching ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' progress bars ("Loading weights", "Writing model shards") for the block."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def build_twin(spec: TwinSpec, out_dir: Path) -> dict[str, Any]:
    """Write config, tokenizer and seeded random weights of ``spec`` into the empty directory ``out_dir``."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    config = XLMRobertaConfig(**spec.model_config())
    tokenizer = XLMRobertaTokenizer(
        vocab=build_vocab(spec.vocab_size, spec.full_charset),
        model_max_length=BGE_RERANKER_V2_M3_MAX_LENGTH,
    )
    with torch.random.fork_rng(devices=[]), quiet_progress_bars():
        torch.random.default_generator.manual_seed(spec.seed)  # the CPU's only: weights are built there
        model = XLMRobertaForSequenceClassification(config).eval()
        parameters = sum(p.numel() for p in model.parameters())
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    del model
    for path in out_dir.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; a shared cache must be readable by other users
    files = {p.name: sha256_file(p) for p in sorted(out_dir.iterdir())}
    manifest = {
        "name": spec.name,
        "description": spec.description,
        "builder_version": BUILDER_VERSION,
        "seed": spec.seed,
        "initializer_range": spec.initializer_range,
        "parameters": parameters,
        "weights_sha256": files["model.safetensors"],
        "tokenizer_sha256": files["tokenizer.json"],
        "files": files,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def default_cache_dir() -> Path:
    env = os.environ.get("RERANK_PERF_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pytest-rerank-perf"


def twin_dir(spec: TwinSpec, cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "twins" / f"{spec.name}-{spec.cache_key()}"


def read_manifest(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / MANIFEST).read_text()))


def ensure_twin(spec: TwinSpec, cache_dir: Path | None = None) -> Path:
    """Path of the cached twin for ``spec``, building it first if needed. Safe against concurrent builders."""
    final = twin_dir(spec, cache_dir)
    if (final / MANIFEST).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build_twin(spec, tmp)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            # Another process finished first (the target exists and is non-empty): use its twin.
            if not (final / MANIFEST).is_file():
                raise RerankPerfError(
                    f"the twin cache entry {final} exists but has no {MANIFEST} (an interrupted copy or a hand "
                    f"edit); delete that directory and run again ({exc})"
                ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
