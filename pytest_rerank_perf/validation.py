"""Checks of user-given values, written once: integers, integer lists, precisions and device names.

Each raises the error type its caller asks for (a ``UsageError`` for options, a ``WorkloadError`` for workload
specs, a ``ValueError`` for library arguments), with a message that names the value and what to write instead.
"""

from __future__ import annotations

from typing import Any

from .errors import UsageError

DTYPE_ALIASES = {
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
}
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def is_int(value: Any) -> bool:
    """A real integer: ``True`` is an int to Python but never a count."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any, what: str, error: type[Exception] = ValueError, minimum: int = 1) -> int:
    """``value`` when it is an integer of at least ``minimum``; ``error`` naming ``what`` otherwise."""
    if not is_int(value) or value < minimum:
        raise error(f"{what} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def parse_int(name: str, text: str, minimum: int = 1) -> int:
    """An option's integer text; a UsageError naming the option otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{name} {text!r}: expected an integer") from None
    if value < minimum:
        raise UsageError(f"{name} {value}: must be at least {minimum}")
    return value


def parse_int_list(name: str, text: str) -> tuple[int, ...] | None:
    """``"1,2,4"`` -> (1, 2, 4); empty -> None (use the default). Duplicates are dropped, order kept sorted."""
    if not text:
        return None
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise UsageError(f"{name} {text!r}: empty entry; give comma-separated positive integers like 1,8,32")
    return tuple(sorted({parse_int(name, item) for item in items}))


def canonical_dtype(text: str, allow_auto: bool = True) -> str:
    """``fp32`` | ``fp16`` | ``bf16`` (or ``auto``) from any accepted spelling; a UsageError otherwise."""
    name = (text or "auto").strip().lower()
    if allow_auto and name == "auto":
        return name
    if name not in DTYPE_ALIASES:
        raise UsageError(f"--rerank-dtype {text!r} is not a precision; use auto, fp32, fp16 or bf16.")
    return DTYPE_ALIASES[name]


def device_text(text: str) -> str:
    """The device option lower-cased and checked for form (``cuda:N`` needs a number); availability is the
    device module's question."""
    device = (text or "auto").strip().lower()
    if device in ("auto", "cpu", "cuda"):
        return device
    if device.startswith("cuda:"):
        if device[5:].isdigit():
            return device
        raise UsageError(f"--rerank-device {device!r}: the CUDA index must be a number (cuda:0)")
    raise UsageError(f"--rerank-device {device!r} is not a device; use {DEVICE_CHOICES}.")
