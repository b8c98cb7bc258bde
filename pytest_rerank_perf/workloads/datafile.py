"""A user's data file: JSONL of flat pairs or of rerank requests, the shape detected per file, read strictly.

Two shapes, one per file (the first line decides):

- flat pairs, ``{"query": ..., "document": ...}`` per line;
- rerank requests, ``{"query": ..., "documents": [...]}`` per line: one query and its candidates, scored in one
  call as a service scores them.

Nothing is accepted that the model could not score as given: every error names ``file:line`` and the expected
shape. Lines are split on ``\\n`` only (U+2028 and U+0085 are valid inside JSON strings), a UTF-8 BOM and CRLF
endings are accepted. The file's id is a hash of what it holds, so a baseline recorded on one file is never
compared with another, and a renamed or re-saved (BOM, CRLF) copy keeps its id.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from ..errors import WorkloadError
from ..fsutil import ReadFixes, read_text
from .pairs import Pair

__all__ = ["DataFile", "Request", "load_jsonl_pairs", "read_data_file"]

Shape = Literal["pairs", "requests"]
Request = tuple[str, tuple[str, ...]]  # (query, documents)

_SHAPES = (
    'each line must be a JSON object, either a pair {"query": "...", "document": "..."} or a rerank request '
    '{"query": "...", "documents": ["...", ...]}, one shape per file'
)
_KEY_OF: dict[Shape, str] = {"pairs": "document", "requests": "documents"}


@dataclass(frozen=True)
class DataFile:
    path: Path
    shape: Shape
    requests: tuple[Request, ...]  # flat pairs: one request of one document per line

    @cached_property
    def digest(self) -> str:
        """sha256 of the content as parsed (shape, queries, documents): not of the bytes, so BOM/CRLF/rename keep it."""
        canonical = json.dumps([self.shape, self.requests], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def id(self) -> str:
        """The data's id, e.g. ``requests-3f9a0c12ab45``: test ids, cell keys and every table carry it."""
        return f"{self.shape}-{self.digest[:12]}"

    @cached_property
    def pairs(self) -> tuple[Pair, ...]:
        return tuple((q, d) for q, docs in self.requests for d in docs)

    @cached_property
    def request_sizes(self) -> tuple[int, ...]:
        return tuple(len(docs) for _, docs in self.requests)


def _text(value: Any, name: str, where: str) -> str:
    """One text of a line, as the model can score it: a non-empty str of encodable characters."""
    if not isinstance(value, str):
        raise WorkloadError(f"{where}: {name} must be a string, got {type(value).__name__}; {_SHAPES}")
    if all(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in value):  # "", " ", "\u200b", "\x00"
        raise WorkloadError(
            f"{where}: {name} is empty or whitespace only (or only invisible control/format characters); the model "
            "cannot score it as given"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # an escaped lone surrogate ("\ud83d"): valid JSON, not text
        raise WorkloadError(
            f"{where}: {name} holds a lone surrogate {value[exc.start]!r} at character {exc.start} (half of an "
            "escaped emoji or other character); write the whole character or remove it"
        ) from None
    return value


def _lines(path: Path) -> list[str]:
    """The file's lines, split on \n only (``str.splitlines`` would split inside strings at U+2028, U+0085)."""
    fix = f"pass a UTF-8 JSONL file: {_SHAPES}"
    fixes = ReadFixes(fix, fix, "not UTF-8 text ({reason} at byte {start}); save it as UTF-8", fix)
    # bytes, then decode: read_text's universal newlines would turn a lone \r into a line break
    text = read_text(path, lambda: path.read_bytes().decode("utf-8-sig"), WorkloadError, fixes)
    return [line.removesuffix("\r") for line in text.split("\n")]


def _object(line: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        problem = exc.msg.removesuffix(" at")  # "Invalid control character at" + " at column": say it once
        raise WorkloadError(f"{where}: not valid JSON ({problem} at column {exc.colno}); {_SHAPES}") from None
    except (ValueError, RecursionError) as exc:  # an integer too long to convert, nesting too deep
        raise WorkloadError(f"{where}: JSON that cannot be loaded ({exc}); {_SHAPES}") from None
    if not isinstance(obj, dict):
        raise WorkloadError(f"{where}: expected a JSON object, got {type(obj).__name__}; {_SHAPES}")
    return obj


def _shape_of(obj: dict[str, Any], where: str, shape: Shape | None) -> Shape:
    """The line's shape: ``document`` makes a pair, ``documents`` a request; the file's first line sets it."""
    if "query" not in obj:
        raise WorkloadError(f"{where}: missing key 'query'; {_SHAPES}")
    found = [s for s, key in _KEY_OF.items() if key in obj]
    if len(found) == 2:
        raise WorkloadError(f"{where}: has both 'document' and 'documents': which is it? {_SHAPES}")
    if not found:
        wanted = f"{_KEY_OF[shape]!r}" if shape else "'document' (a pair) or 'documents' (a request)"
        raise WorkloadError(f"{where}: missing key {wanted}; {_SHAPES}")
    return found[0]


def _documents(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        got = "an empty list" if value == [] else type(value).__name__
        raise WorkloadError(f"{where}: 'documents' must be a non-empty list of strings, got {got}; {_SHAPES}")
    return tuple(_text(d, f"'documents'[{i}]", where) for i, d in enumerate(value))


def read_data_file(path: str | Path) -> DataFile:
    """The file's requests (flat pairs: one document each). Blank lines are skipped; anything else malformed is a
    ``WorkloadError`` naming ``file:line``."""
    path = Path(path)
    shape: Shape | None = None
    first = 0
    requests: list[Request] = []
    for lineno, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        obj = _object(line, where)
        this = _shape_of(obj, where, shape)
        if shape is None:
            shape, first = this, lineno
        elif this != shape:
            raise WorkloadError(
                f"{where}: a {this[:-1]} line in a file of {shape} (line {first} set the shape); {_SHAPES}"
            )
        query = _text(obj["query"], "'query'", where)
        if shape == "requests":
            docs = _documents(obj["documents"], where)
        else:
            docs = (_text(obj["document"], "'document'", where),)
        requests.append((query, docs))
    if shape is None:
        raise WorkloadError(f"{path}: contains no pairs or requests; {_SHAPES}")
    return DataFile(path, shape, tuple(requests))


def load_jsonl_pairs(path: str | Path) -> list[Pair]:
    """Every (query, document) pair of a data file, of either shape (a request gives one pair per document)."""
    return list(read_data_file(path).pairs)
