"""One lock per shared object: a model or a tokenizer that two threads must never use at once.

A fast tokenizer keeps its padding and truncation on the shared Rust object and sets them on every call, then
encodes with whatever is set; a model variant switches the shared model's attention kernel for the length of its
call. Whoever uses such an object where another thread may be using it (the batcher's tokenizer thread and model
worker, a caller's own ``predict``) holds ``exclusive(obj)`` around the use, so the two take turns.

The locks are re-entrant. A call that needs both takes the model's before its tokenizer's, never the other way
round, so two holders cannot deadlock.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any

_locks: dict[int, threading.RLock] = {}  # id(obj) -> its RLock; an entry leaves when obj is collected


def exclusive(obj: Any) -> threading.RLock:
    """The lock of ``obj``: the same one for as long as ``obj`` lives, whoever asks for it."""
    key = id(obj)
    lock = _locks.get(key)
    if lock is None:
        new = threading.RLock()
        lock = _locks.setdefault(key, new)  # atomic: two threads asking at once get the same lock
        # Not weakly referenceable (TypeError): the entry stays, and a later object with this id shares the lock,
        # which only serialises more.
        if lock is new:
            with contextlib.suppress(TypeError):
                weakref.finalize(obj, _locks.pop, key, None)
    return lock
