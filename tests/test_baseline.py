"""Baseline files: schema checks naming file and field, atomic locked writes, merging, and every file in baselines/."""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_rerank_perf.fsutil import write_atomic
from pytest_rerank_perf.store.json_files import record
from pytest_rerank_perf.store.merging import merge
from pytest_rerank_perf.store.reader import BaselineError, parse_profile, read_profile
from pytest_rerank_perf.store.schema import BaselineCell, BaselineProfile, MetricSummary, ModelBaseline, dumps

ROOT = Path(__file__).resolve().parents[1]
KEY = "twin:tiny:abc:fp32:L512"


def _cell(batch_size: int = 4, scale: float = 1.0, seed: int = 0) -> BaselineCell:
    rng = np.random.default_rng(seed)
    samples = list(scale * 500 * np.exp(rng.normal(0, 0.03, 12)))
    return BaselineCell(
        workload_id="fixed256-s0-n12",
        num_pairs=12,
        batch_size=batch_size,
        rounds=12,
        samples={
            "throughput": MetricSummary.of(samples, "pairs/s"),
            "latency": MetricSummary.of([1 / s for s in samples], "s/batch"),
        },
        values={"vram": None, "energy": None},
        tokens_per_s=128000.0,
        recorded_at="2026-11-24T00:00:00Z",
    )


def _section(*cells: BaselineCell) -> ModelBaseline:
    return ModelBaseline(
        identity={"key": KEY, "source": "twin"},
        hardware={"profile_id": "cpu-test-2c-1t", "kind": "cpu", "gpu": None},
        software={"torch": "2.13.0"},
        recorded_at="2026-11-24T00:00:00Z",
        cells={c.key: c for c in cells},
    )


def _write(tmp_path: Path, profile: BaselineProfile) -> Path:
    path = tmp_path / f"{profile.profile_id}.json"
    write_atomic(path, dumps(profile))
    return path


def test_round_trip_is_exact(tmp_path: Path) -> None:
    profile = merge(None, KEY, _section(_cell(4), _cell(12)), force=False)
    path = _write(tmp_path, profile)
    assert read_profile(path) == profile
    assert read_profile(tmp_path / "absent.json") is None


def _corrupt(data: dict[str, Any], edit: str) -> None:
    cells = data["models"][KEY]["cells"]
    cell = cells[next(iter(cells))]
    if edit == "median":
        cell["throughput"]["median"] = "fast"
    elif edit == "median-lie":
        cell["throughput"]["median"] *= 2
    elif edit == "negative-sample":
        cell["throughput"]["samples"][3] = -1
    elif edit == "rounds":
        cell["rounds"] = 99
    elif edit == "missing":
        del cell["batch_size"]
    elif edit == "key":
        cells["other/bs4"] = cells.pop(next(iter(cells)))
    elif edit == "schema":
        data["schema_version"] = 1
    elif edit == "processes":
        cell["runs"] = 2
    elif edit == "profile":
        data["profile_id"] = "someone-else"


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        ("median", "throughput.median", "expected a positive finite number, got 'fast'"),
        ("median-lie", "throughput.median", "is not the median of the samples"),
        ("negative-sample", "throughput.samples[3]", "got -1"),
        ("rounds", ".rounds", "99 rounds but 12 samples"),
        ("missing", ".batch_size", "missing"),
        ("key", "cells['other/bs4']", "the key does not match its fields"),
        ("schema", "schema_version", "reads schema version 2, the file has 1 (version 1 keyed models by name"),
        ("processes", ".runs", "2 processes but 1 process medians"),
        ("profile", "profile_id", "does not match the file name"),
    ],
)
def test_hand_edited_files_name_file_and_field(tmp_path: Path, edit: str, field: str, problem: str) -> None:
    path = _write(tmp_path, merge(None, KEY, _section(_cell()), force=False))
    data = json.loads(path.read_text())
    _corrupt(data, edit)
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    with pytest.raises(BaselineError) as info:
        read_profile(path)
    message = str(info.value)
    for part in (str(path), field, problem):
        assert part in message
    assert "git checkout" in message
    assert path.read_bytes() == before


def test_record_refuses_clashes_without_force_and_keeps_unmeasured_cells(tmp_path: Path) -> None:
    path = tmp_path / "cpu-test-2c-1t.json"
    record(path, KEY, _section(_cell(4), _cell(12)), force=False)
    before = path.read_bytes()
    with pytest.raises(BaselineError, match=r"already records .*bs12.*nothing was overwritten.*--rerank-force"):
        record(path, KEY, _section(_cell(12, scale=2)), force=False)
    assert path.read_bytes() == before
    record(path, KEY, _section(_cell(12, scale=2)), force=True)
    stored = read_profile(path)
    assert stored is not None
    cells = stored.models[KEY].cells
    assert cells[_cell(4).key] == _cell(4)  # not re-measured: kept as it was
    assert cells[_cell(12).key].throughput.median == pytest.approx(2 * _cell(12).throughput.median, rel=1e-5)
    # another model identity is added beside, without force
    record(path, "twin:tiny:abc:fp32:L256", _section(_cell(4)), force=False)
    stored = read_profile(path)
    assert stored is not None
    assert set(stored.models) == {KEY, "twin:tiny:abc:fp32:L256"}


def test_append_pools_samples_of_another_run(tmp_path: Path) -> None:
    path = tmp_path / "cpu-test-2c-1t.json"
    first, second = _cell(4, seed=1), _cell(4, seed=2)
    record(path, KEY, _section(first), force=False)
    record(path, KEY, _section(second), force=False, append=True)
    stored = read_profile(path)
    assert stored is not None
    cell = stored.models[KEY].cells[first.key]
    assert cell.runs == 2
    assert cell.rounds == 24
    assert cell.throughput.samples == first.throughput.samples + second.throughput.samples
    assert cell.throughput.median == pytest.approx(np.median(cell.throughput.samples))


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, merge(None, KEY, _section(_cell()), force=False))
    before = path.read_bytes()

    def broken_replace(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        record(path, KEY, _section(_cell(12)), force=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _record_one(path: str, batch_size: int) -> None:
    cell = _cell(batch_size, seed=batch_size)
    record(Path(path), KEY, _section(cell), force=False)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cpu-test-2c-1t.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_one, args=(str(path), b)) for b in (1, 2, 3, 4, 5, 6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    stored = read_profile(path)
    assert stored is not None
    assert sorted(c.batch_size for c in stored.models[KEY].cells.values()) == [1, 2, 3, 4, 5, 6]


def test_every_committed_baseline_file_is_valid() -> None:
    files = sorted((ROOT / "baselines").glob("*.json"))
    assert files, "baselines/ must hold at least the CPU reference profile"
    for path in files:
        profile = read_profile(path)
        assert profile is not None, path
        assert profile.models, path
        for key, section in profile.models.items():
            assert key == section.identity["key"], path
            assert section.cells, f"{path}: {key} has no cells"
            assert section.hardware["profile_id"] == profile.profile_id
            assert parse_profile(json.loads(dumps(profile)), path) == profile  # canonical form


def test_cpu_reference_profile_is_labelled_cpu_and_tiny_twin() -> None:
    cpu = [p for p in (ROOT / "baselines").glob("cpu-*.json")]
    assert cpu
    profile = read_profile(cpu[0])
    assert profile is not None
    sections = profile.models.values()
    assert any(s.identity["name"].endswith("tiny-twin") and s.hardware["kind"] == "cpu" for s in sections)
    cells = [c for s in profile.models.values() for c in s.cells.values()]
    assert all(c.runs >= 3 for c in cells)  # recorded by `nox -s record-baseline`


def test_merge_keeps_the_profile_id_of_the_section() -> None:
    profile = merge(None, KEY, _section(_cell()), force=False)
    assert profile.profile_id == "cpu-test-2c-1t"
    assert replace(profile, models={}).to_dict()["schema_version"] == 2
