from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

from pytest_rerank_perf.backends import load_model
from pytest_rerank_perf.backends import twin as twin_mod
from pytest_rerank_perf.backends.identity import config_hash
from pytest_rerank_perf.backends.twin import (
    BGE_RERANKER_V2_M3_CONFIG,
    BGE_RERANKER_V2_M3_PARAMETERS,
    FULL_TWIN,
    MANIFEST,
    TINY_TWIN,
    TwinSpec,
    build_twin,
    build_vocab,
    ensure_twin,
    read_manifest,
    twin_dir,
)
from pytest_rerank_perf.errors import RerankPerfError


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_tiny_twin_build_is_byte_deterministic(tmp_path: Path) -> None:
    build_twin(TINY_TWIN, tmp_path / "a")
    build_twin(TINY_TWIN, tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert set(a) >= {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MANIFEST}
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], f"{name} differs between two builds"


def test_seed_changes_weights_but_not_tokenizer(tmp_path: Path) -> None:
    other = TwinSpec(name=TINY_TWIN.name, description="", config=TINY_TWIN.config, seed=1, full_charset=False)
    m0 = build_twin(TINY_TWIN, tmp_path / "s0")
    m1 = build_twin(other, tmp_path / "s1")
    assert m0["weights_sha256"] != m1["weights_sha256"]
    assert m0["tokenizer_sha256"] == m1["tokenizer_sha256"]
    assert TINY_TWIN.cache_key() != other.cache_key()


def test_twin_build_leaves_caller_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_twin(TINY_TWIN, tmp_path / "t")
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(("size", "full"), [(8002, False), (250002, True)])
def test_vocab_layout_matches_xlm_r(size: int, full: bool) -> None:
    vocab = build_vocab(size, full)
    pieces = [p for p, _ in vocab]
    assert len(pieces) == size
    assert pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert pieces[-1] == "<mask>"
    assert len(set(pieces)) == size
    assert build_vocab(size, full) == vocab


def test_vocab_too_small_is_an_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        build_vocab(100, False)


def test_full_twin_config_is_the_real_architecture() -> None:
    cfg = FULL_TWIN.model_config()
    for key, value in BGE_RERANKER_V2_M3_CONFIG.items():
        assert cfg[key] == value, key
    # The hash ignores initializer_range (training-only), so twin and real share it.
    assert config_hash(XLMRobertaConfig(**cfg).to_dict()) == config_hash(BGE_RERANKER_V2_M3_CONFIG)
    assert config_hash(TINY_TWIN.model_config()) != config_hash(cfg)
    with torch.device("meta"):
        model = XLMRobertaForSequenceClassification(XLMRobertaConfig(**cfg))
    assert sum(p.numel() for p in model.parameters()) == BGE_RERANKER_V2_M3_PARAMETERS == 567_755_777


def test_tokenizer_uses_xlm_r_pair_template(tiny_twin_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_twin_dir)
    assert tok.num_special_tokens_to_add(pair=True) == 4
    ids = tok("model data", "search query")["input_ids"]
    q = tok("model data", add_special_tokens=False)["input_ids"]
    d = tok("search query", add_special_tokens=False)["input_ids"]
    assert ids == [0, *q, 2, 2, *d, 2]
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, len(tok) - 1]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert tok.unk_token_id not in tok("检索 文档 Grüße", "résultat")["input_ids"]


def test_ensure_twin_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real_build = twin_mod.build_twin

    def counting_build(spec: TwinSpec, out: Path) -> dict:
        calls.append(out)
        return real_build(spec, out)

    monkeypatch.setattr(twin_mod, "build_twin", counting_build)
    first = ensure_twin(TINY_TWIN, tmp_path)
    second = ensure_twin(TINY_TWIN, tmp_path)
    assert first == second == twin_dir(TINY_TWIN, tmp_path)
    assert len(calls) == 1
    assert read_manifest(first)["parameters"] > 0
    assert [p.name for p in first.parent.iterdir()] == [first.name], "no temporary build directory left behind"


def test_ensure_twin_yields_to_a_concurrent_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If another process renames its build into place first, ours is discarded and theirs is used."""
    real_build = twin_mod.build_twin
    final = twin_dir(TINY_TWIN, tmp_path)

    def racing_build(spec: TwinSpec, out: Path) -> dict:
        manifest = real_build(spec, out)
        real_build(spec, final)  # the other process wins the race
        (final / "winner").write_text("other process")
        return manifest

    monkeypatch.setattr(twin_mod, "build_twin", racing_build)
    assert ensure_twin(TINY_TWIN, tmp_path) == final
    assert (final / "winner").read_text() == "other process"
    assert [p.name for p in final.parent.iterdir()] == [final.name]


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_PERF_CACHE", str(tmp_path / "c"))
    assert twin_dir(TINY_TWIN).parent == tmp_path / "c" / "twins"


@pytest.mark.slow
def test_full_twin_builds_and_predicts_on_cpu(tmp_path: Path) -> None:
    path = ensure_twin(FULL_TWIN, tmp_path)
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["parameters"] == 567_755_777
    loaded = load_model("twin", device="cpu", dtype="bf16", max_length=128, cache_dir=tmp_path)
    assert loaded.identity.parameters == 567_755_777
    assert loaded.identity.config_hash == config_hash(BGE_RERANKER_V2_M3_CONFIG)
    assert len(loaded.tokenizer) == 250002
    scores = loaded.cross_encoder.predict([("model search", "data index query"), ("检索", "文档 排序")])
    assert torch.isfinite(torch.as_tensor(scores)).all()
    assert scores[0] != scores[1]


def test_corrupt_cache_entry_is_a_clear_error(tmp_path: Path) -> None:
    final = twin_dir(TINY_TWIN, tmp_path)
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")  # an interrupted copy: no manifest
    with pytest.raises(RerankPerfError, match="delete that directory"):
        ensure_twin(TINY_TWIN, tmp_path)
    assert (final / "config.json").read_text() == "{}"  # nothing of the user's is touched
