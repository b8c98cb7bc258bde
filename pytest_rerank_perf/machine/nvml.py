"""NVML access shared by the hardware profile and the NVML trackers: open it, find the handle of a torch device.

nvidia-ml-py raises ``NVMLError`` subclasses for most failures, but also ``NVMLLibraryMismatchError`` (not a
subclass) on drivers without a newer query, so callers catch ``Exception`` where a failed query must not stop a run.
``use_nvml`` swaps ``pynvml`` for a stand-in (``pytest_rerank_perf.fakegpu``), as ``device.use_cuda`` does for CUDA.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import device as dev

_stand_in: Any = None


def use_nvml(stand_in: Any) -> None:
    """Answer every NVML question from ``stand_in`` (a module-like object with pynvml's API); None restores it."""
    global _stand_in
    _stand_in = stand_in


def load() -> Any:
    """The ``pynvml`` module (or its stand-in), not initialised; raises ImportError where it is not installed."""
    if _stand_in is not None:
        return _stand_in
    import pynvml

    return pynvml


def text(value: Any) -> Any:
    """NVML returns bytes in older bindings and str in newer ones."""
    return value.decode() if isinstance(value, bytes) else value


def open_nvml() -> Any:
    """The initialised ``pynvml`` module; raises ImportError or an NVML error where it cannot be used."""
    pynvml = load()
    pynvml.nvmlInit()
    return pynvml


def throttle_mask(pynvml: Any, handle: Any) -> int:
    """The bits of why the clocks are held down now; the newer call first (nvidia-ml-py marks the throttle-reasons
    name for removal in CUDA 14). Raises where neither is offered or the query fails."""
    query = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    return int((query or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons)(handle))


def _bare_uuid(uuid: Any) -> str:
    return str(text(uuid)).removeprefix("GPU-").removeprefix("MIG-")


def all_handles(pynvml: Any) -> Iterator[Any]:
    """Every GPU's handle and, on a GPU in MIG mode, the handle of each of its MIG instances."""
    for i in range(pynvml.nvmlDeviceGetCount()):
        parent = pynvml.nvmlDeviceGetHandleByIndex(i)
        yield parent
        try:
            slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(parent) if pynvml.nvmlDeviceGetMigMode(parent)[0] else 0
        except Exception:  # not MIG-capable, or an older binding
            slots = 0
        for j in range(slots):
            try:
                yield pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, j)
            except Exception:  # an empty slot raises NotFound
                continue


def handle_for(pynvml: Any, index: int, torch_uuid: Any) -> Any:
    """The NVML handle of torch's device ``index``: CUDA_VISIBLE_DEVICES renumbers devices for torch but not for
    NVML, and a MIG slice is not its parent GPU, so match by UUID (``GPU-`` or ``MIG-``) where torch reports one."""
    if torch_uuid is not None:
        wanted = _bare_uuid(torch_uuid)
        for handle in all_handles(pynvml):
            if _bare_uuid(pynvml.nvmlDeviceGetUUID(handle)) == wanted:
                return handle
        # the index would name another GPU (CUDA_VISIBLE_DEVICES) or a MIG slice's parent: no figure beats a wrong one
        raise LookupError(f"no NVML device has torch's UUID {torch_uuid} for cuda:{index}")
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def device_handle(device: str) -> tuple[Any, Any]:
    """(pynvml, handle) for a ``cuda:N`` device; raises where NVML is absent or unusable."""
    pynvml = open_nvml()
    index = dev.index_of(device)
    return pynvml, handle_for(pynvml, index, getattr(dev.properties(index), "uuid", None))
