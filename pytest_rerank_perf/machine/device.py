"""The one module that calls ``torch.cuda``: availability, device selection, synchronisation, timing events,
memory statistics and the out-of-memory error types.

Everything else asks this module, so a test can substitute a fake GPU in one place, and every call names the
device it is about: a tracker measuring ``cuda:1`` never synchronises or records on the current device instead.
Every function is a no-op (or returns None) for ``cpu``: "not measured" is never zero. torch is imported lazily.
``use_cuda`` swaps ``torch.cuda`` for a stand-in (``pytest_rerank_perf.fakegpu``): the seam the CI's fake GPU uses.
``clock``/``pause`` are the time every timing site of a cell reads and spends (wall clock by default); ``use_clock``
swaps in a virtual one, so a test's timings and verdicts do not depend on the host's speed.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from ..errors import DeviceError

_stand_in: Any = None  # what answers instead of ``torch.cuda`` while a fake GPU is installed
_clock: Any = None  # what tells the time instead of the wall clock while a virtual clock is installed


def use_cuda(stand_in: Any) -> None:
    """Answer every CUDA question from ``stand_in`` (an object with ``torch.cuda``'s API); None restores torch."""
    global _stand_in
    _stand_in = stand_in


def _cuda() -> Any:
    if _stand_in is not None:
        return _stand_in
    import torch

    return torch.cuda


def use_clock(stand_in: Any) -> None:
    """Read the time from ``stand_in`` (called for seconds; ``advance(seconds)`` moves it); None: the wall clock."""
    global _clock
    _clock = stand_in


def clock() -> float:
    """Seconds on the clock every timing site of a cell reads: ``time.perf_counter``, or the installed stand-in."""
    return time.perf_counter() if _clock is None else float(_clock())


def pause(seconds: float) -> None:
    """Let ``seconds`` pass on that clock: a busy-wait on the wall clock (sleep() overshoots sub-millisecond waits),
    an advance of a virtual one."""
    if _clock is not None:
        _clock.advance(seconds)
        return
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


# Out-of-memory as cuBLAS/cuDNN report it: a RuntimeError whose text names a failed allocation.
_OOM_TEXT = ("CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED", "CUDA out of memory")


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def placement(device: str) -> str:
    """Where a model's tensors go for ``device``: the device itself, or the CPU under a fake GPU, whose forwards run
    for real on the CPU while the stand-in accounts their memory and time as if on ``device``."""
    return "cpu" if is_cuda(device) and _stand_in is not None else device


def index_of(device: str) -> int:
    """``cuda:N`` -> N; ``cuda`` -> the current device."""
    _, _, index = device.partition(":")
    return int(index) if index else current_index()


def cuda_available() -> bool:
    try:
        return bool(_cuda().is_available())
    except ImportError:
        return False


def device_count() -> int:
    cuda = _cuda()
    return int(cuda.device_count()) if cuda.is_available() else 0


def current_index() -> int:
    return int(_cuda().current_device())


def set_device(device: str) -> None:
    """Make ``device`` current in this thread: stray allocations land on it too."""
    if is_cuda(device):
        _cuda().set_device(index_of(device))


def properties(index: int) -> Any:
    """torch's device properties (name, total_memory, major, minor, uuid, multi_processor_count)."""
    return _cuda().get_device_properties(index)


def bf16_supported(device: str) -> bool:
    if not is_cuda(device):
        return True
    return int(properties(index_of(device)).major) >= 8  # Ampere and later: this device, not the current one


def cuda_build() -> str | None:
    """The CUDA version torch was built with; None for a CPU build."""
    if _stand_in is not None:
        return str(_stand_in.version_cuda)
    import torch

    return torch.version.cuda


def resolve(device: str) -> str:
    """``auto``/``cpu``/``cuda``/``cuda:N`` (already checked for form) -> ``cpu`` or ``cuda:N`` present here."""
    if device == "auto":
        return "cuda:0" if cuda_available() else "cpu"
    if device == "cpu":
        return device
    if not cuda_available():
        import torch

        raise DeviceError(
            f"--rerank-device {device} asked for a GPU, but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build: {cuda_build() or 'no'}). "
            "Run on a GPU machine with a CUDA build of torch, or use --rerank-device cpu."
        )
    index = int(device.partition(":")[2] or 0)
    if index >= device_count():
        raise DeviceError(
            f"--rerank-device {device}: only {device_count()} CUDA device(s) are visible (check CUDA_VISIBLE_DEVICES)."
        )
    return f"cuda:{index}"


def synchronize(device: str) -> None:
    """Wait for the work queued on ``device`` (this device, not the current one)."""
    if is_cuda(device):
        _cuda().synchronize(index_of(device))


def synchronizer(device: str) -> Callable[[], None]:
    """A cheap callable that synchronises ``device``; a no-op on the CPU."""
    if not is_cuda(device):
        return lambda: None
    cuda, index = _cuda(), index_of(device)
    return lambda: cuda.synchronize(index)


def stamp(device: str) -> Any:
    """A time stamp for forward timing: a CUDA event recorded on ``device``'s current stream (no stall), or the
    clock on the CPU. Read pairs of stamps with ``elapsed``."""
    if not is_cuda(device):
        return clock()
    cuda = _cuda()
    event = cuda.Event(enable_timing=True)
    event.record(cuda.current_stream(index_of(device)))
    return event


def elapsed(device: str, pairs: list[tuple[Any, Any]]) -> list[float]:
    """Seconds between each (start, end) pair of stamps; synchronises ``device`` once so every event is done."""
    if not is_cuda(device):
        return [end - start for start, end in pairs]
    if pairs:
        synchronize(device)
    return [start.elapsed_time(end) / 1000.0 for start, end in pairs]


def reset_peaks(device: str) -> None:
    """Reset the peak counters to what is allocated and reserved now (after ``free_memory`` at a cell's start, that
    is the resident weights and what the cell's own warm-up cached)."""
    if is_cuda(device):
        cuda, index = _cuda(), index_of(device)
        cuda.synchronize(index)
        cuda.reset_peak_memory_stats(index)


def peaks(device: str) -> tuple[int | None, int | None]:
    """(peak allocated, peak reserved) bytes since ``reset_peaks``; (None, None) on the CPU."""
    if not is_cuda(device):
        return None, None
    cuda, index = _cuda(), index_of(device)
    cuda.synchronize(index)
    return int(cuda.max_memory_allocated(index)), int(cuda.max_memory_reserved(index))


def allocated(device: str) -> int | None:
    """Bytes held by live tensors on ``device`` now (after ``free_memory``: the resident weights); None on the CPU."""
    if not is_cuda(device):
        return None
    return int(_cuda().memory_allocated(index_of(device)))


def free_memory(device: str) -> None:
    """Drop unreachable tensors and return the caching allocator's free blocks: after an out-of-memory, and before
    each cell, so its memory figures never include what earlier cells or tests left cached."""
    gc.collect()
    if is_cuda(device):
        _cuda().empty_cache()  # every device's cache: the allocator empties them all


def out_of_memory(message: str = "CUDA out of memory. Tried to allocate 2.00 GiB") -> Exception:
    """The error torch raises when a CUDA allocation fails; constructible without a GPU (stand-ins raise it)."""
    import torch

    return torch.cuda.OutOfMemoryError(message)


def is_oom(exc: BaseException) -> bool:
    """CUDA out-of-memory, however it surfaces: torch's own error, or a library's allocation failure. Any other
    error is a real failure and must propagate."""
    try:
        import torch
    except ImportError:
        return False
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in _OOM_TEXT)
