"""``rerank-perf profiles``: one row per committed profile and model, read strictly; bad input is one line, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf.cli import main
from pytest_rerank_perf.report.profiles import BEGIN, END
from pytest_rerank_perf.store.schema import BaselineProfile, dumps, section_from_cells

SOFTWARE = {"torch": "2.11.0+cu130", "transformers": "5.17.0", "sentence-transformers": "6.0.1"}
H200 = {"profile_id": "nvidia-h200", "kind": "cuda", "cpu_model": "x", "cpu_cores": 16, "software": SOFTWARE}
H200["gpu"] = {"name": "NVIDIA H200", "memory_total_bytes": 150_754_820_096, "driver_version": "580.159.04"}
CPU = {"profile_id": "cpu-x-2c-1t", "kind": "cpu", "cpu_model": "AMD EPYC", "cpu_cores": 2, "gpu": None}
CPU["software"] = {"torch": "2.13.0+cpu", "transformers": "5.24.0", "sentence-transformers": "6.2.0"}


def _cell(num_pairs: int, batch_size: int, pairs_per_s: float, vram: int | None = None) -> dict[str, Any]:
    samples = {"throughput": [pairs_per_s * f for f in (0.99, 1.0, 1.01)]}
    cell = {
        "status": "ok",
        "workload_id": f"fixed256-s0-n{num_pairs}",
        "num_pairs": num_pairs,
        "batch_size": batch_size,
    }
    return {**cell, "samples": samples, "tokens_per_s": pairs_per_s * 256, "peak_vram_allocated_bytes": vram}


def _write(folder: Path, hardware: dict[str, Any], key: str, cells: list[dict[str, Any]], booms: Any = None) -> Path:
    identity = {"key": key, "dtype": key.split(":")[3], "name": "twin"}
    section = section_from_cells(cells, identity, hardware, booms)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hardware['profile_id']}.json"
    path.write_text(dumps(BaselineProfile(hardware["profile_id"], {key: section})))
    return path


@pytest.fixture
def baselines(tmp_path: Path) -> Path:
    folder = tmp_path / "baselines"
    gib = 2**30
    gpu_cells = [_cell(10, 1, 55.0, gib), _cell(10, 32, 375.5, int(1.14 * gib)), _cell(50, 32, 400.0, 2 * gib)]
    _write(folder, H200, "twin:bge-reranker-v2-m3:9b55cbc7f8df1817:fp16:L512", gpu_cells, {"512": 96, "1024": 40})
    _write(folder, CPU, "twin:custom:97fac666988f5f20:fp32:L512", [_cell(10, 8, 300.0), _cell(10, 32, 280.0)])
    (folder / ".cpu-x-2c-1t.json.lock").write_text("")  # a lock and a side file of unsaved cells are no profiles
    (folder / "cpu-x-2c-1t.json.unsaved-20261204").write_text("{}")
    return folder


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    return line


def test_one_row_per_profile_and_model(baselines: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", str(baselines)]) == 0
    header, rule, *rows = capsys.readouterr().out.splitlines()
    assert "best batch size per num_pairs (pairs/s)" in header
    assert set(rule) <= {"-", " "}
    cpu, gpu = rows
    assert cpu.split()[0] == "cpu-x-2c-1t"
    assert "CPU AMD EPYC, 2 cores" in cpu
    assert "n10: bs8 (300.0)" in cpu
    assert "2.13.0+cpu / 5.24.0 / 6.2.0" in cpu
    assert gpu.split()[0] == "nvidia-h200"
    for shown in ("NVIDIA H200, 140.4 GiB, driver 580.159.04", "twin:bge-reranker-v2-m3:9b55cbc7f8df1817:fp16:L512"):
        assert shown in gpu
    assert "n10: bs32 (375.5); n50: bs32 (400.0)" in gpu
    assert "2.00 GiB" in gpu  # the largest peak VRAM of the section's cells
    assert "512: 96; 1024: 40" in gpu


def test_markdown_and_update_write_the_same_table(
    baselines: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles", str(baselines), "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| profile | hardware | model key |")
    assert len(table) == 4
    page = tmp_path / "hardware.md"
    page.write_text(f"# Hardware\n\nbefore\n\n{BEGIN}\nstale\n{END}\n\nafter\n")
    assert main(["profiles", str(baselines), "--update", str(page)]) == 0
    assert page.read_text() == "# Hardware\n\nbefore\n\n" + "\n".join([BEGIN, *table, END]) + "\n\nafter\n"


def test_one_file_is_listed_too(baselines: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", str(baselines / "nvidia-h200.json")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_bad_input_is_one_line_and_exit_2(baselines: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no such folder" in _one_line_error(["profiles", str(tmp_path / "nowhere")], capsys)
    (tmp_path / "empty").mkdir()
    assert "holds no baseline profiles" in _one_line_error(["profiles", str(tmp_path / "empty")], capsys)
    (baselines / "nvidia-h200.json").write_text('{"schema_version": 2,')
    line = _one_line_error(["profiles", str(baselines)], capsys)
    assert "nvidia-h200.json" in line
    assert "not valid JSON" in line
    page = tmp_path / "page.md"
    page.write_text("no markers here\n")
    _write(baselines, H200, "twin:bge-reranker-v2-m3:9b55cbc7f8df1817:fp16:L512", [_cell(10, 1, 55.0)])
    assert "no <!-- rerank-perf profiles" in _one_line_error(
        ["profiles", str(baselines), "--update", str(page)], capsys
    )
    assert page.read_text() == "no markers here\n"  # left as it was


def test_a_hand_edited_figure_is_refused_by_the_strict_reader(
    baselines: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = baselines / "cpu-x-2c-1t.json"
    path.write_text(path.read_text().replace('"median": 300.0', '"median": 999.0', 1))
    line = _one_line_error(["profiles", str(baselines)], capsys)
    assert "is not the median of the samples" in line
