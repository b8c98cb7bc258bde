"""The seams stay seams: small modules, one owner of ``torch.cuda``, thin benchmarks, procedures that round-trip."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pytest_rerank_perf import backends, store
from pytest_rerank_perf.ab.result import ABResult
from pytest_rerank_perf.backends.base import Reranker
from pytest_rerank_perf.backends.standin import CostModel, OomAbove, SkewedLogits
from pytest_rerank_perf.measurements import PROCEDURES
from pytest_rerank_perf.measurements.data_profile import DataProfile, DataProfiles
from pytest_rerank_perf.measurements.invariance import InvarianceResult
from pytest_rerank_perf.measurements.load import LoadResults
from pytest_rerank_perf.measurements.matrix_result import MatrixResult
from pytest_rerank_perf.measurements.oom_boundary import Boundary, OomBoundaries
from pytest_rerank_perf.measurements.overhead import OverheadResult
from pytest_rerank_perf.measurements.router import RouterResult
from pytest_rerank_perf.measurements.selfcheck import Check, SelfCheckResult
from pytest_rerank_perf.report.run_report import RunReport, merge_reports
from pytest_rerank_perf.scenarios import BUILT_IN

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_rerank_perf"


def _code(path: Path) -> str:
    """Source without docstrings and comments: what the module does, not what it says."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            body[0] = ast.Pass()
    return ast.unparse(tree)


# The layers, lowest first: a module imports only from its own layer or lower ones (docs/architecture.md). The root
# keeps what every layer shares; the packages above it name concepts.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "errors fsutil stats validation tables progress",
        "machine",
        "workloads",
        "backends",
        "trackers",
        "serving",
        "scenarios",
        "store",
        "gate",
        "ab",
        "measurements",
        "report",
        "fakegpu",
        "plugin",
        "cli __init__",
    )
)


def _imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of ``package`` -> the modules of it that it imports (relative or absolute, lazy ones too)."""

    def name(path: Path) -> str:
        parts = path.relative_to(package.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    paths = {name(p): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                within = [*here[: len(here) - node.level + 1], *([node.module] if node.module else [])]
                base = ".".join(within) if node.level else node.module or ""
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[module] = {m for m in found if m in paths and m != module}
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if _layer(d) > _layer(m))


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for start in sorted(graph):
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append(" -> ".join((*path, start)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*path, nxt)))
    return found


def test_no_module_imports_from_a_layer_above_its_own_and_none_in_a_cycle() -> None:
    graph = _imports()
    assert len(graph) > 100  # the walk found the package
    assert _upward(graph) == []
    assert _cycles(graph) == []


def test_the_package_root_holds_only_what_every_layer_shares() -> None:
    root = {p.stem for p in PACKAGE.glob("*.py")}
    assert len(root) <= 8, sorted(root)
    assert root <= LAYERS[0] | LAYERS[-1]
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set().union(*LAYERS[1:-1])  # every package has its layer


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "pytest_rerank_perf"
    files = {
        "__init__.py": "",
        "backends/__init__.py": "",
        "backends/base.py": "from ..plugin.session import RerankSession\n",  # a backend importing the plugin
        "plugin/__init__.py": "",
        "plugin/session.py": "def later():\n    from pytest_rerank_perf.report import plots\n",
        "report/__init__.py": "",
        "report/plots.py": "from . import figure\n",
        "report/figure.py": "from .plots import Plot\n",
    }
    for rel, text in files.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text)
    graph = _imports(package)
    assert _upward(graph) == ["pytest_rerank_perf.backends.base -> pytest_rerank_perf.plugin.session"]
    assert _cycles(graph) == [
        "pytest_rerank_perf.report.figure -> pytest_rerank_perf.report.plots -> pytest_rerank_perf.report.figure",
        "pytest_rerank_perf.report.plots -> pytest_rerank_perf.report.figure -> pytest_rerank_perf.report.plots",
    ]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_300_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 300


def test_only_the_device_module_calls_torch_cuda() -> None:
    """The fake GPU stands in for torch.cuda (it raises torch's own out-of-memory type), so it may name it."""
    callers = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py") if "torch.cuda." in _code(p)]
    assert sorted(str(p) for p in callers if p.parts[0] != "fakegpu") == ["machine/device.py"]


def test_only_the_nvml_module_imports_pynvml() -> None:
    """Every NVML question goes through ``nvml.load()``, the seam the fake NVML is installed at."""
    importers = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py") if "import pynvml" in _code(p)]
    assert [str(p) for p in importers] == ["machine/nvml.py"]


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks").glob("test_*.py")), ids=lambda p: p.name)
def test_benchmarks_hold_no_product_logic(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = {type(node).__name__ for node in ast.walk(tree)}
    assert not kinds & {"AsyncFunctionDef", "ClassDef", "While", "Lambda"}
    assert "ThreadPoolExecutor" not in path.read_text(encoding="utf-8")


def test_stand_ins_and_the_cross_encoder_implement_the_protocol(tiny_model: backends.CrossEncoderReranker) -> None:
    assert isinstance(tiny_model, Reranker)
    for stand_in in (OomAbove(tiny_model, 4), SkewedLogits(tiny_model, "position"), CostModel(lambda n, b: 0.0)):
        assert isinstance(stand_in, Reranker)


def test_registries_name_what_exists() -> None:
    assert "sentence-transformers" in backends.LOADERS
    assert "file" in store.STORES
    expected = {"ab", "selfcheck", "data", "matrix", "overhead", "oom_boundary", "load", "router", "invariance"}
    assert {p.key for p in PROCEDURES} == expected


def _report(device: str, cell_batch: int, boundary: int) -> RunReport:
    cell = {
        "status": "ok",
        "num_pairs": 10,
        "batch_size": cell_batch,
        "pairs_per_s": 10.0 * cell_batch,
        "workload_id": "w-n10",
        "rounds": 3,
        "real_tokens": 1,
        "padded_tokens": 1,
        "latency_s": {"call": {}},
    }
    return RunReport(
        created="2026-11-25T00:00:00Z",
        device=device,
        profile={"profile_id": "p"},
        profile_summary="p",
        model={"key": "k", "max_length": 512},
        results={
            "matrix": MatrixResult([cell]),
            "oom_boundary": OomBoundaries({boundary: Boundary(8, 9, ((8, True), (9, False)))}),
            "invariance": InvarianceResult("fp16", [0.01 * boundary / 128]),
            "overhead": OverheadResult(0.01, (0.0, 0.02), 40, 50, 16, 0.1),
            "load": LoadResults({f"s{boundary}": {"servers": {}}}),
            "router": RouterResult({"char lengths, max_batch 32": [{"callers": 1, "requests_per_s": 2.0}]}, 10),
            "selfcheck": SelfCheckResult([Check(f"check on {device}", "1 ms", "pass")]),
            "ab": ABResult({"spec": "main"}, {"spec": "."}, 2, ["base,head", "head,base"], threshold=0.05),
            "data": DataProfiles(
                {"w": DataProfile.of("w", "seeded", "seeded", [10, 20], [2], 512).with_padding(2, {})}
            ),
        },
    )


def test_every_procedure_round_trips_through_the_report_json() -> None:
    report = _report("cuda:0", 4, 128)
    data = report.to_dict()
    again = RunReport.from_dict(data, Path("report.json"))
    assert again.to_dict() == data
    assert set(again.results) == {p.key for p in PROCEDURES}


def test_xdist_reports_merge_per_procedure() -> None:
    merged = merge_reports([_report("cuda:1", 8, 256), _report("cuda:0", 4, 128)], BUILT_IN)
    assert merged.devices == ["cuda:0", "cuda:1"]
    assert [c["batch_size"] for c in merged.cells] == [4, 8]
    assert set(merged.result(OomBoundaries).boundaries) == {128, 256}
    assert merged.result(InvarianceResult).max_deviation == pytest.approx(0.02)
    assert set(merged.result(LoadResults).scenarios) == {"s128", "s256"}
    assert merged.to_dict()["best_batch_size"] == {"w-n10": 8}
