"""The docs stay true to the code: every relative link resolves, every option the plugin registers is documented
(and every documented one exists), the hardware page holds what ``rerank-perf profiles`` prints, and the outputs use
the glossary's words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pytest_rerank_perf import plugin
from pytest_rerank_perf.gate.outcome import GateReport
from pytest_rerank_perf.gate.verdict import format_gate, gate_markdown
from pytest_rerank_perf.measurements.oom_boundary import Boundary, OomBoundaries
from pytest_rerank_perf.report.markdown import report_markdown
from pytest_rerank_perf.report.profiles import BEGIN, END, profiles_table, read_profiles
from pytest_rerank_perf.report.run_report import RunReport

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(page: Path) -> str:
    """A page without its fenced code blocks and inline code: links and headings live outside them."""
    return re.sub(r"`[^`\n]*`", "", _FENCE.sub("", page.read_text(encoding="utf-8")))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", _FENCE.sub("", page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(page: Path) -> list[str]:
    return [t for t in _LINK.findall(_prose(page)) if not re.match(r"[a-z]+:", t)]


def _broken(page: Path) -> list[str]:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading with that anchor in {resolved.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert not _broken(page)


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Its part\n\n```\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    links = "[a](#title-x-here) [b](#nowhere) [c](missing.md) [d](other.md#its-part) [e](other.md#not-a-heading)"
    page.write_text(f"# Title: `x` here\n\n{links} `[f](inline.md)` [g](https://example.com)\n")
    assert _broken(page) == [
        "#nowhere: no heading with that anchor in page.md",
        "missing.md: no such file",
        "other.md#not-a-heading: no heading with that anchor in other.md",
    ]


class _Registry:
    """Stands in for pytest's parser: records what the plugin's ``pytest_addoption`` registers."""

    def __init__(self) -> None:
        self.flags: list[str] = []
        self.ini: list[str] = []

    def getgroup(self, *args: Any, **kwargs: Any) -> _Registry:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.flags += names

    def addini(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.ini.append(name)


def _registered() -> _Registry:
    registry = _Registry()
    plugin.pytest_addoption(registry)  # type: ignore[arg-type]
    return registry


def test_every_registered_option_and_ini_key_is_on_the_options_page() -> None:
    registry = _registered()
    assert "--rerank-model" in registry.flags  # the registry saw the plugin's options
    assert "rerank_scenarios" in registry.ini
    page = (DOCS / "options.md").read_text(encoding="utf-8")
    missing = [name for name in [*registry.flags, *registry.ini] if f"`{name}`" not in page]
    assert not missing, f"add these to docs/options.md: {missing}"


def test_every_option_the_docs_name_exists() -> None:
    known = set(_registered().flags)
    named = {
        (page.name, flag)
        for page in PAGES
        for flag in re.findall(r"--rerank-[a-z0-9-]*[a-z0-9]", page.read_text(encoding="utf-8"))
    }
    unknown = sorted((name, flag) for name, flag in named if flag not in known)
    assert not unknown, unknown


def test_the_hardware_page_holds_the_committed_profiles() -> None:
    page = (DOCS / "hardware.md").read_text(encoding="utf-8")
    shown = page.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines()
    expected = profiles_table(read_profiles(ROOT / "baselines")).markdown()
    assert shown == expected, "refresh it: rerank-perf profiles baselines --update docs/hardware.md"


def test_the_readme_fits_two_screens_and_ci_runs_its_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 180
    commands = re.findall(r"^python3 -m pip install nox && nox -s \S+$", readme, re.M)
    assert len(commands) == 2, commands
    assert commands[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_outputs_use_the_glossary_words() -> None:
    """index.md and the verdict name the model key and the drift as the glossary does."""
    glossary = (DOCS / "glossary.md").read_text(encoding="utf-8")
    for term in ("model key", "drift", "minimum detectable regression", "hardware profile", "CPU fallback"):
        assert f"**{term}**" in glossary
    model = {"key": "twin:custom:0123456789abcdef:fp32:L512", "name": "twin-tiny", "parameters": 1}
    index = report_markdown(RunReport("now", "cpu", {"profile_id": "cpu-x"}, "cpu-x: CPU", model), [])
    assert "- **model key:** `twin:custom:0123456789abcdef:fp32:L512`" in index
    assert "- **model:** " in index
    gate = GateReport("pass", "baselines/cpu-x.json", model["key"], drift="latency: 4.0% between-process drift")
    assert "drift: latency: 4.0% between-process drift" in format_gate(gate)
    verdict = gate_markdown(gate, "cpu-x")
    assert f"- model key: `{model['key']}`" in verdict
    assert "- drift: latency" in verdict
    booms = OomBoundaries({512: Boundary(96, 112, ())})
    assert booms.summary_lines() == ["OOM boundary at max_length 512: largest batch 96"]
    assert "## OOM boundaries: the largest batch before out-of-memory" in booms.markdown({})


def test_the_gate_page_names_pytest_benchmarks_trap_and_its_workaround() -> None:
    gate = (DOCS / "gate.md").read_text(encoding="utf-8")
    assert "ionelmc/pytest-benchmark#217" in gate
    assert "keep `--benchmark-storage` under the directory you run pytest from" in gate


_MODULE = re.compile(r"`((?:[a-z_]+/)+[a-z_]+\.py)`")


def _missing_modules(page: Path, root: Path = ROOT) -> list[str]:
    """Source paths a page names in inline code (`backends/guards.py`) found neither in the package nor the repo."""
    named = set(_MODULE.findall(page.read_text(encoding="utf-8")))
    return sorted(p for p in named if not (root / "pytest_rerank_perf" / p).exists() and not (root / p).exists())


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_path_the_docs_name_exists(page: Path) -> None:
    assert not _missing_modules(page), "a module moved: correct the path in the page"


def test_the_module_path_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "pytest_rerank_perf" / "backends").mkdir(parents=True)
    (tmp_path / "pytest_rerank_perf" / "backends" / "guards.py").write_text("")
    page = tmp_path / "page.md"
    page.write_text("`backends/guards.py` and `serving/guards.py`\n")
    assert _missing_modules(page, tmp_path) == ["serving/guards.py"]
