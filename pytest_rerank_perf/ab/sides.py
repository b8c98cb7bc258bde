"""A side made runnable: which Python runs it, from which checkout, and what it is (commit, dirty or not).

Ref and directory sides run the checkout with the current environment's packages (offline on a GPU box: nothing is
installed, the checkout goes first on PYTHONPATH). A ref is extracted once per commit (``git archive``) into the
cache. A ``pip:`` side runs the working tree in an environment of its own, built once per requirement set and reused:
a venv that sees the current environment's packages behind its own (a ``.pth`` line), with the requirements
installed into it, so only what differs is downloaded. Every build is made under a temporary name and renamed when
complete: an interrupted build is never reused.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RerankPerfError
from .spec import Spec, git, is_checkout

CACHE = ".rerank-ab"  # under the rootdir; git-ignored
BUILD_TIMEOUT_S = 1800.0


class SideError(RerankPerfError):
    """A side could not be made runnable (a checkout, an environment): nothing can be compared (exit 125)."""


@dataclass(frozen=True)
class Side:
    role: str  # "base" or "head"
    spec: Spec
    python: str
    root: Path  # the checkout it runs in
    pythonpath: Path | None  # put first on PYTHONPATH: the side's package, not the installed one
    commit: str | None = None
    dirty: bool | None = None  # None: not a git checkout
    notes: tuple[str, ...] = field(default=())

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        if self.pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.pythonpath), base.get("PYTHONPATH", "")) if p)
        return env

    def identity(self) -> dict[str, Any]:
        return {
            "spec": self.spec.text,
            "kind": self.spec.kind,
            "commit": self.commit,
            "dirty": self.dirty,
            "requirements": list(self.spec.requirements),
            "python": self.python,
            "root": str(self.root),
        }


def _state(root: Path) -> tuple[str | None, bool | None]:
    commit = git(root, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    return commit, bool(git(root, "status", "--porcelain", "--untracked-files=no"))


def _extract(repo: Path, commit: str, cache: Path) -> Path:
    """The commit's tree under ``cache/checkouts/<commit>``, extracted once."""
    target = cache / "checkouts" / commit
    if target.is_dir():
        return target
    try:
        archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit], capture_output=True)
    except OSError as exc:
        raise SideError(f"cannot run git to extract {commit[:10]}: {exc}") from None
    if archive.returncode != 0:
        raise SideError(f"git archive {commit[:10]} failed: {archive.stderr.decode(errors='replace').strip()}")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{commit[:10]}-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            try:
                tar.extractall(scratch, filter="data")
            except TypeError:  # a Python without extraction filters; git's own archive is trusted
                tar.extractall(scratch)
    except tarfile.TarError as exc:  # the empty tree's archive, say
        shutil.rmtree(scratch, ignore_errors=True)
        raise SideError(f"{commit[:10]}: its files could not be extracted ({exc}); a commit of this project?") from None
    scratch.rename(target)
    return target


def _site_dirs() -> list[str]:
    """This environment's package folders, which a ``pip:`` side sees behind its own."""
    return [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]


def env_key(requirements: tuple[str, ...], python: str = sys.executable) -> str:
    text = "\n".join([python, *sorted(requirements), *_site_dirs()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)


def build_env(requirements: tuple[str, ...], cache: Path, say: Callable[[str], None], run: Runner = _run) -> Path:
    """The Python of the environment for ``requirements``: reused when built before, else built now."""
    target = cache / "envs" / env_key(requirements)
    python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if (target / "requirements.txt").is_file() and python.exists():
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    say(f"rerank-perf: A/B: building the environment for {', '.join(requirements)} (once; reused next time) ...")
    steps = [[sys.executable, "-m", "venv", str(scratch)]]
    inner = scratch / python.relative_to(target)
    steps.append([str(inner), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements])
    for i, step in enumerate(steps):
        try:
            done = run(step)
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise SideError(f"building the environment for {', '.join(requirements)}: {exc}") from None
        except KeyboardInterrupt:  # a half-built environment is never left behind
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        if done.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            raise SideError(
                f"the environment for {', '.join(requirements)} would not build ({' '.join(step[:4])} ... exit "
                f"{done.returncode}); offline? a version that does not exist?\n{tail}"
            )
        if i == 0:  # the venv exists: let it see this environment's packages behind its own
            purelib = next(inner.parent.parent.glob("lib*/python*/site-packages"), None) or (
                scratch / "Lib" / "site-packages"
            )
            (purelib / "_rerank_ab_parent.pth").write_text("\n".join(_site_dirs()) + "\n", encoding="utf-8")
    (scratch / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    return python


def prepare(role: str, spec: Spec, repo: Path, cache: Path, say: Callable[[str], None], run: Runner = _run) -> Side:
    """``spec`` made runnable as the ``role`` side."""
    if spec.kind == "tree":
        commit, dirty = _state(repo)
        own = repo if is_checkout(repo) else None  # a project that uses the plugin: its installed package
        return Side(role, spec, sys.executable, repo, own, commit, dirty)
    if spec.kind == "dir":
        assert spec.path is not None
        commit, dirty = _state(spec.path)
        return Side(role, spec, sys.executable, spec.path, spec.path, commit, dirty)
    if spec.kind == "ref":
        assert spec.commit is not None
        root = _extract(repo, spec.commit, cache)
        if not is_checkout(root):
            raise SideError(f"{spec.label} holds no pytest_rerank_perf/ and benchmarks/: not a commit of this project")
        return Side(role, spec, sys.executable, root, root, spec.commit, False)
    python = build_env(spec.requirements, cache, say, run)
    commit, dirty = _state(repo)
    return Side(role, spec, str(python), repo, repo if is_checkout(repo) else None, commit, dirty)
