"""What one side of an A/B is: a SPEC string, parsed and checked before anything runs."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import UsageError

Kind = Literal["tree", "ref", "dir", "pip"]
FORMS = (
    "a git ref or commit of this repository, '.' (the working tree), a directory holding a checkout, or "
    "pip:REQ[,REQ...]"
)
# what a directory must hold to be run as a side: the package and the benchmark it runs
CHECKOUT_MARKS = ("pytest_rerank_perf/__init__.py", "benchmarks")


@dataclass(frozen=True)
class Spec:
    text: str  # as given
    kind: Kind
    commit: str | None = None  # ref: the commit it names now (a branch moving later changes nothing here)
    path: Path | None = None  # dir: the checkout
    requirements: tuple[str, ...] = ()  # pip: installed over the working tree's environment

    @property
    def label(self) -> str:
        if self.kind == "ref" and self.commit and not self.commit.startswith(self.text):
            return f"{self.text} ({self.commit[:10]})"
        return self.text


def git(repo: Path, *args: str) -> str | None:
    """``git -C repo args`` stripped, or None where git, the repository or the answer is missing."""
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def is_checkout(path: Path) -> bool:
    return all((path / mark).exists() for mark in CHECKOUT_MARKS)


def _requirements(option: str, text: str) -> tuple[str, ...]:
    from packaging.requirements import InvalidRequirement, Requirement

    reqs = tuple(r.strip() for r in text.split(",") if r.strip())
    if not reqs:
        raise UsageError(f"{option} {text!r}: no requirement after 'pip:'; e.g. pip:sentence-transformers==6.2.0")
    for req in reqs:
        try:
            Requirement(req)
        except InvalidRequirement as exc:
            raise UsageError(
                f"{option} {text!r}: {req!r} is not a pip requirement ({exc}); e.g. pip:torch==2.13.0"
            ) from None
    return reqs


def parse_spec(option: str, text: str, repo: Path, cwd: Path | None = None) -> Spec:
    """``text`` as a side. A directory that holds a checkout wins over a git ref of the same name; a relative
    directory is taken from the current directory."""
    text = text.strip()
    if not text:
        raise UsageError(f"{option}: empty; give {FORMS}")
    if text == ".":
        return Spec(text, "tree")
    if text.startswith("pip:"):
        return Spec(text, "pip", requirements=_requirements(option, text[4:]))
    path = Path(text).expanduser()
    path = path if path.is_absolute() else (cwd or Path.cwd()) / path
    if path.is_dir():
        if not is_checkout(path):
            raise UsageError(
                f"{option} {text!r}: the directory {path} holds no checkout of pytest-rerank-perf (no "
                f"{' or '.join(CHECKOUT_MARKS)}); give the folder a `git clone` or `git worktree add` made"
            )
        return Spec(text, "dir", path=path.resolve())
    commit = git(repo, "rev-parse", "--verify", "--quiet", f"{text}^{{commit}}")
    if commit:
        return Spec(text, "ref", commit=commit)
    repository = git(repo, "rev-parse", "--git-dir") is not None
    where = f"the repository at {repo}" if repository else f"{repo}, which is no git repository,"
    raise UsageError(f"{option} {text!r}: not a commit of {where} nor a directory; give {FORMS}")
