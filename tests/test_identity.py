"""The model identity follows content, not names; a model's config.json is read before its weights; a model that
cannot be had ends the run with one message and pytest's usage-error exit code."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.backends import CrossEncoderReranker, load_model
from pytest_rerank_perf.backends.cross_encoder import validate_max_length
from pytest_rerank_perf.backends.found import find_model
from pytest_rerank_perf.backends.identity import architecture_of
from pytest_rerank_perf.backends.locate import REAL_HUB_ID
from pytest_rerank_perf.backends.model_config import usable_positions
from pytest_rerank_perf.backends.twin import BGE_RERANKER_V2_M3_CONFIG, FULL_TWIN, MANIFEST, TINY_TWIN
from pytest_rerank_perf.errors import ModelNotFoundError, UsageError

LFS_FILES = ("model.safetensors", "tokenizer.json", "sentencepiece.bpe.model")  # stored in git-lfs on the hub
FILES = (*LFS_FILES, "config.json", "tokenizer_config.json", "special_tokens_map.json")


def _model_folder(dest: Path, weights: bytes = b"weights " * 64, config: dict[str, Any] | None = None) -> Path:
    """A model directory as hashing sees it: the bytes need not be a loadable model."""
    dest.mkdir(parents=True)
    for name in FILES:
        (dest / name).write_bytes(f"{name} content\n".encode())
    (dest / "model.safetensors").write_bytes(weights)
    (dest / "config.json").write_text(json.dumps(config or BGE_RERANKER_V2_M3_CONFIG))
    return dest


def _hub_cache(hub: Path, source: Path, repo_id: str = REAL_HUB_ID, revision: str = "a" * 40) -> Path:
    """The hub layout: LFS blobs named by their sha256, other blobs by their git blob id (40 hex), and a snapshot
    of relative symlinks. Returns the snapshot directory."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    for file in source.iterdir():
        data = file.read_bytes()
        if file.name in LFS_FILES:
            blob = hashlib.sha256(data).hexdigest()
        else:
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / blob)
    return snapshot


def _edit_config(path: Path, **fields: Any) -> None:
    (path / "config.json").write_text(json.dumps({**BGE_RERANKER_V2_M3_CONFIG, **fields}))


def _key(spec: str | Path, dtype: str = "fp32", max_length: int = 512) -> str:
    return find_model(str(spec)).identity(dtype, max_length, parameters=0).key()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


def test_the_key_is_readable_and_carries_no_name(tmp_path: Path) -> None:
    found = find_model(str(_model_folder(tmp_path / "my-fine-tune")))
    ident = found.identity("fp16", 1024, parameters=0)
    assert re.fullmatch(r"real:bge-reranker-v2-m3:[0-9a-f]{16}:fp16:L1024", ident.key())
    assert ident.name == "my-fine-tune"
    assert "my-fine-tune" not in ident.key()
    assert ident.to_dict()["architecture"] == "bge-reranker-v2-m3"
    assert ident.to_dict()["tokenizer_hash"] == found.tokenizer_hash


def test_a_folder_its_hub_cache_copy_and_the_snapshot_path_share_one_key(tmp_path: Path, hub: Path) -> None:
    folder = _model_folder(tmp_path / "some-folder-name")
    snapshot = _hub_cache(hub, folder)
    assert _key(folder) == _key(REAL_HUB_ID) == _key(snapshot)
    local, cached = find_model(str(folder)), find_model(REAL_HUB_ID)
    assert (local.weights_hash, local.tokenizer_hash) == (cached.weights_hash, cached.tokenizer_hash)
    assert (cached.name, local.name) == (REAL_HUB_ID, "some-folder-name")  # names differ; keys do not


def test_one_byte_of_weights_changes_the_key(tmp_path: Path, hub: Path) -> None:
    weights = bytearray(b"weights " * 64)
    base = _key(_model_folder(tmp_path / "a" / "model", bytes(weights)))
    weights[100] ^= 1
    changed = _model_folder(tmp_path / "b" / "model", bytes(weights))  # same folder name, another fine-tune
    assert _key(changed) != base
    _hub_cache(hub, changed)
    assert _key(REAL_HUB_ID) == _key(changed) != base


def test_a_cache_blob_is_only_trusted_by_its_sha256_name(tmp_path: Path, hub: Path) -> None:
    """Small files are git blobs on the hub (40-hex names): they are hashed by content, like the tokenizer."""
    folder = _model_folder(tmp_path / "model")
    snapshot = _hub_cache(hub, folder)
    (snapshot / "special_tokens_map.json").resolve().write_text('{"changed": true}')
    assert _key(REAL_HUB_ID) != _key(folder)


@pytest.mark.parametrize(
    ("edit", "same"),
    [
        (lambda d: (d / "tokenizer.json").write_text("another tokenizer"), False),
        (lambda d: (d / "tokenizer_config.json").write_text("{}"), False),
        (lambda d: (d / "sentencepiece.bpe.model").unlink(), False),
        (lambda d: _edit_config(d, num_hidden_layers=3), False),
        (lambda d: _edit_config(d, initializer_range=1.0, transformers_version="9"), True),
        (lambda d: (d / "README.md").write_text("notes"), True),
    ],
)
def test_the_key_follows_weights_config_and_tokenizer_only(tmp_path: Path, edit: Any, same: bool) -> None:
    base = _key(_model_folder(tmp_path / "model"))
    other = _model_folder(tmp_path / "other")
    edit(other)
    assert (_key(other) == base) is same


def test_dtype_length_and_source_stay_in_the_key(tiny_model: CrossEncoderReranker, tmp_path: Path) -> None:
    ident = tiny_model.identity
    assert ident.key() == f"twin:custom:{ident.content_digest()[:16]}:fp32:L512"
    assert dataclasses.replace(ident, dtype="bf16").key() != ident.key()
    assert dataclasses.replace(ident, max_length=256).key() != ident.key()
    assert dataclasses.replace(ident, source="real").key() != ident.key()
    assert dataclasses.replace(ident, tokenizer_hash="0" * 64).key() != ident.key()  # the twin's tokenizer counts
    assert dataclasses.replace(ident, name="x", path="/elsewhere").key() == ident.key()


def test_a_twin_and_a_copy_of_its_files_have_one_content(twin_cache: Path, tiny_twin_dir: Path, tmp_path: Path) -> None:
    """The twin's hashes come from its manifest; hashing its files as a real model gives the same content."""
    twin = find_model("twin-tiny", twin_cache)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_twin_dir, copy)
    (copy / MANIFEST).unlink()
    real = find_model(str(copy))
    assert twin.tokenizer_hash is not None
    assert twin.tokenizer_hash == real.tokenizer_hash
    assert (twin.weights_hash, twin.architecture) == (real.weights_hash, real.architecture)
    twin_ident, real_ident = twin.identity("fp32", 512, 0), real.identity("fp32", 512, 0)
    assert twin_ident.content_digest() == real_ident.content_digest()
    assert twin_ident.key() != real_ident.key()  # a twin never compares with real weights


def test_only_bge_reranker_v2_m3_shapes_are_labelled_so() -> None:
    bge = dict(BGE_RERANKER_V2_M3_CONFIG)
    assert architecture_of(bge) == "bge-reranker-v2-m3"
    assert architecture_of({**bge, "initializer_range": 0.5, "transformers_version": "9"}) == "bge-reranker-v2-m3"
    assert architecture_of(FULL_TWIN.model_config()) == "bge-reranker-v2-m3"
    assert architecture_of(TINY_TWIN.model_config()) == "custom"
    assert architecture_of({**bge, "num_hidden_layers": 3}) == "custom"
    bert = {**bge, "architectures": ["BertForSequenceClassification"], "model_type": "bert"}
    assert architecture_of(bert) == "custom"
    assert architecture_of({**bge, "id2label": {"0": "A", "1": "B"}}) == "custom"


# --- max_length against the model's position table, before its weights load --------------------------------------


def test_usable_positions_follow_the_embedding_style() -> None:
    assert usable_positions(BGE_RERANKER_V2_M3_CONFIG) == 8192  # 8194 - (padding_idx 1 + 1)
    assert usable_positions({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert usable_positions({"model_type": "bert", "max_position_embeddings": 512, "pad_token_id": 0}) == 512
    assert usable_positions({"model_type": "bert"}) is None


def _loadable_model(dest: Path, tiny_twin_dir: Path, model_type: str, positions: int) -> Path:
    """A small randomly initialised classifier (XLM-R or BERT) with the tiny twin's tokenizer."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    shapes = {"vocab_size": 8002, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = AutoConfig.for_model(
        model_type, **shapes, intermediate_size=64, max_position_embeddings=positions, num_labels=1, pad_token_id=1
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(dest)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_twin_dir / name, dest / name)
    return dest


def test_max_length_beyond_the_position_table_is_a_usage_error(tmp_path: Path, tiny_twin_dir: Path) -> None:
    path = _loadable_model(tmp_path / "xlmr-514", tiny_twin_dir, "xlm-roberta", 514)
    with pytest.raises(UsageError, match=r"has 514 position embeddings.*at most 512 tokens.*--rerank-max-length 512"):
        load_model(str(path), device="cpu", max_length=1024)
    loaded = load_model(str(path), device="cpu", max_length=512)
    assert loaded.identity.architecture == "custom"
    long_pair = [(" ".join(["river"] * 600), " ".join(["mountain"] * 600))]
    assert loaded.predict(long_pair, batch_size=1).shape == (1,)  # truncated at 512: no index out of bounds


def test_a_bert_classifier_is_custom_with_its_own_limit(tmp_path: Path, tiny_twin_dir: Path) -> None:
    path = _loadable_model(tmp_path / "bert", tiny_twin_dir, "bert", 9000)
    assert validate_max_length(8500, str(path)) == 8500  # bge's 8192 is not this model's limit
    with pytest.raises(UsageError, match="at most 8192"):
        validate_max_length(8500, "twin")
    loaded = load_model(str(path), device="cpu", max_length=8500)
    assert loaded.identity.architecture == "custom"
    assert loaded.identity.key().startswith("real:custom:")
    with pytest.raises(UsageError, match="has 9000 position embeddings, so at most 9000 tokens"):
        load_model(str(path), device="cpu", max_length=9001)


def test_the_bge_limit_holds_for_a_real_bge_config(tmp_path: Path) -> None:
    path = _model_folder(tmp_path / "bge", config={**BGE_RERANKER_V2_M3_CONFIG, "max_position_embeddings": 9000})
    path_ok = _model_folder(tmp_path / "bge-ok")
    with pytest.raises(UsageError, match="at most 8192 tokens"):
        load_model(str(path_ok), device="cpu", max_length=8193)  # raised before the (fake) weights are read
    with pytest.raises(UsageError, match="at most 8998 tokens"):
        load_model(str(path), device="cpu", max_length=8999)  # other positions: another (custom) architecture


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("{not json", "config.json is not readable JSON"),
        ("[1, 2]", "config.json holds a list, not an object"),
        ('{"hidden_size": 8}', "config.json has no model_type"),
        ('{"model_type": "bert", "max_position_embeddings": "many"}', "max_position_embeddings 'many' is not a count"),
    ],
)
def test_an_unusable_config_is_a_clear_error(tmp_path: Path, config_text: str, message: str) -> None:
    path = _model_folder(tmp_path / "model")
    (path / "config.json").write_text(config_text)
    with pytest.raises(ModelNotFoundError, match=message) as info:
        load_model(str(path), device="cpu")
    assert "--rerank-model twin" in str(info.value)


def test_a_broken_weights_file_is_one_clear_error(tmp_path: Path, tiny_twin_dir: Path) -> None:
    path = _loadable_model(tmp_path / "broken", tiny_twin_dir, "xlm-roberta", 514)
    (path / "model.safetensors").write_bytes(b"\x00" * 100)
    expected = r"(?s)it does not load \(SafetensorError: .*--rerank-model twin"
    with pytest.raises(ModelNotFoundError, match=expected) as info:
        load_model(str(path), device="cpu", max_length=128)
    assert info.value.__cause__ is None  # no chained loader traceback under the message
    assert info.value.__suppress_context__


# --- the fixture: one message, once, and the usage-error exit code ----------------------------------------------

THREE_TESTS = "".join(f"def test_{i}(rerank_model):\n    pass\n\n" for i in range(3))


def _run(pytester: pytest.Pytester, model: str) -> tuple[pytest.RunResult, str]:
    pytester.makepyfile(THREE_TESTS)
    result = pytester.runpytest("--rerank-model", model, "--rerank-device", "cpu")
    return result, result.stdout.str() + result.stderr.str()


def test_a_missing_model_ends_the_run_with_one_message(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result, output = _run(pytester, str(tmp_path / "nonexistent"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert output.count("is not a directory") == 1
    assert output.count("--rerank-model twin") == 1
    assert "Traceback" not in output


def test_a_hub_id_not_cached_prints_no_hub_hint(pytester: pytest.Pytester, hub: Path) -> None:
    result, output = _run(pytester, REAL_HUB_ID)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert output.count("not in the local Hugging Face cache") == 1
    assert "local_files_only" not in output
    assert "Traceback" not in output


def test_a_broken_model_directory_ends_the_run_with_one_message(
    pytester: pytest.Pytester, tmp_path: Path, tiny_twin_dir: Path
) -> None:
    path = tmp_path / "broken"
    shutil.copytree(tiny_twin_dir, path)
    (path / "model.safetensors").write_bytes(b"\x00" * 100)
    result, output = _run(pytester, str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert output.count("does not load") == 1
    assert "Traceback" not in output
