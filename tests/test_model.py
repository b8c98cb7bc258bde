from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_rerank_perf.backends import CrossEncoderReranker, load_model
from pytest_rerank_perf.backends.content import tokenizer_hash
from pytest_rerank_perf.backends.cross_encoder import resolve_model_spec, validate_max_length
from pytest_rerank_perf.backends.identity import config_hash
from pytest_rerank_perf.backends.locate import REAL_HUB_ID
from pytest_rerank_perf.backends.precision import resolve_dtype
from pytest_rerank_perf.backends.twin import BGE_RERANKER_V2_M3_CONFIG, MANIFEST
from pytest_rerank_perf.errors import DeviceError, ModelNotFoundError, UsageError
from pytest_rerank_perf.machine import device
from pytest_rerank_perf.validation import device_text

PAIRS = [
    ("what is a cross encoder", "a model that scores a query and a document together"),
    ("检索 模型", "排序 文档 向量"),
    ("battery energy", "solar wind grid"),
    ("river", "mountain island coast population"),
    ("query", "document"),
]


def resolve_device(text: str) -> str:
    """The device option as ``load_model`` resolves it: its form checked, then its availability."""
    return device.resolve(device_text(text))


def test_tiny_twin_predicts_finite_spread_scores(tiny_model: CrossEncoderReranker) -> None:
    scores = tiny_model.cross_encoder.predict(PAIRS, batch_size=2)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()
    # initializer_range 0.2: scores spread out; with the real 0.02 they would all sit at ~0.4988.
    assert scores.max() - scores.min() > 0.05
    assert len(set(scores.tolist())) == len(PAIRS)


def test_identity_of_tiny_twin(tiny_model: CrossEncoderReranker) -> None:
    ident = tiny_model.identity
    assert ident.source == "twin"
    assert ident.name == "bge-reranker-v2-m3-tiny-twin"
    assert ident.dtype == "fp32"
    assert ident.max_length == 512
    assert tiny_model.cross_encoder.max_seq_length == 512
    assert ident.parameters == sum(p.numel() for p in tiny_model.cross_encoder.model.parameters())
    assert ident.architecture == "custom"  # 2 layers x 64 hidden: not bge-reranker-v2-m3's shapes
    assert ident.key() == f"twin:custom:{ident.content_digest()[:16]}:fp32:L512"
    assert ident.name not in ident.key()
    file_sha = hashlib.sha256((Path(ident.path) / "model.safetensors").read_bytes()).hexdigest()
    assert ident.weights_hash == hashlib.sha256(f"model.safetensors:{file_sha}\n".encode()).hexdigest()
    assert ident.tokenizer_hash == tokenizer_hash(Path(ident.path))
    assert {"tokenizer_hash", "architecture"} <= set(ident.to_dict())


def test_bf16_is_selectable_on_cpu(twin_cache: Path, tiny_twin_dir: Path) -> None:
    loaded = load_model("twin-tiny", device="cpu", dtype="bf16", max_length=64, cache_dir=twin_cache)
    assert loaded.identity.dtype == "bf16"
    assert next(loaded.cross_encoder.model.parameters()).dtype == torch.bfloat16
    assert loaded.identity.key().endswith(":bf16:L64")


def test_config_hash_tracks_architecture_only() -> None:
    base = dict(BGE_RERANKER_V2_M3_CONFIG)
    assert config_hash({**base, "initializer_range": 0.5, "transformers_version": "9"}) == config_hash(base)
    assert config_hash({**base, "num_hidden_layers": 12}) != config_hash(base)
    assert config_hash({**base, "id2label": {"0": "A", "1": "B"}}) != config_hash(base)


def test_defaults_follow_the_device() -> None:
    assert resolve_dtype("auto", "cuda:0") == "fp16"
    assert resolve_dtype("auto", "cpu") == "fp32"
    assert resolve_dtype("bfloat16", "cpu") == "bf16"
    assert resolve_model_spec("auto", "cuda:0") == "twin"
    assert resolve_model_spec("auto", "cpu") == "twin-tiny"
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: resolve_dtype("fp8", "cpu"), UsageError, "fp32, fp16 or bf16"),
        (lambda: resolve_device("gpu"), UsageError, "cpu, cuda or cuda:N"),
        (lambda: resolve_device("cuda:x"), UsageError, "must be a number"),
        (lambda: validate_max_length(9000), UsageError, "at most 8192"),
        (lambda: validate_max_length(0), UsageError, "at least 8"),
    ],
)
def test_bad_values_name_the_fix(call: object, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        call()  # type: ignore[operator]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_clear_error() -> None:
    with pytest.raises(DeviceError, match="--rerank-device cpu"):
        resolve_device("cuda")


def test_missing_directory_says_how_to_get_the_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        load_model(str(tmp_path / "nowhere"), device="cpu")
    message = str(info.value)
    assert "is not a directory" in message
    assert "--rerank-model twin" in message
    assert "never downloads" in message


def test_hub_id_not_in_cache_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match=f"not in the local Hugging Face cache {tmp_path / 'hf' / 'hub'}"):
        load_model(REAL_HUB_ID, device="cpu")


def _as_real_model(tiny_twin_dir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_twin_dir, dest)
    (dest / MANIFEST).unlink()
    return dest


def test_directory_without_weights_names_what_is_missing(tmp_path: Path, tiny_twin_dir: Path) -> None:
    path = _as_real_model(tiny_twin_dir, tmp_path / "model")
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="has no weights"):
        load_model(str(path), device="cpu")


def test_real_weights_load_from_a_local_directory(tmp_path: Path, tiny_twin_dir: Path) -> None:
    path = _as_real_model(tiny_twin_dir, tmp_path / "my-reranker")
    loaded = load_model(str(path), device="cpu", max_length=128)
    assert loaded.identity.source == "real"
    assert loaded.identity.name == "my-reranker"
    assert "my-reranker" not in loaded.identity.key()
    assert loaded.identity.key().startswith("real:custom:")
    assert np.isfinite(loaded.cross_encoder.predict(PAIRS[:2])).all()


def test_real_weights_load_from_the_offline_hf_cache(
    tmp_path: Path, tiny_twin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub layout: blobs named by sha256, snapshots of symlinks, refs/main naming the revision."""
    hub = tmp_path / "hf" / "hub"
    repo = hub / ("models--" + REAL_HUB_ID.replace("/", "--"))
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for file in tiny_twin_dir.iterdir():
        if file.name == MANIFEST:
            continue
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copy(file, repo / "blobs" / digest)
        (snapshot / file.name).symlink_to(repo / "blobs" / digest)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model(REAL_HUB_ID, device="cpu", max_length=128)
    assert loaded.identity.source == "real"
    assert loaded.identity.name == REAL_HUB_ID
    # In the hub cache the weights hash comes from the blob name: same as hashing the file.
    fresh = load_model(str(_as_real_model(tiny_twin_dir, tmp_path / "copy")), device="cpu", max_length=128)
    assert loaded.identity.weights_hash == fresh.identity.weights_hash
    assert loaded.identity.config_hash == fresh.identity.config_hash
    assert loaded.identity.key() == fresh.identity.key()  # a hub id and a folder of the same files: one key
    assert loaded.identity.architecture == "custom"  # the tiny twin's shapes, though cached under the BAAI id
