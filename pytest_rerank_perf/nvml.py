"""NVML access shared by the hardware profile and the NVML trackers: open it, find the handle of a torch device.

nvidia-ml-py raises ``NVMLError`` subclasses for most failures, but also ``NVMLLibraryMismatchError`` (not a
subclass) on drivers without a newer query, so callers catch ``Exception`` where a failed query must not stop a run.
"""

from __future__ import annotations

from typing import Any

from . import device as dev


def text(value: Any) -> Any:
    """NVML returns bytes in older bindings and str in newer ones."""
    return value.decode() if isinstance(value, bytes) else value


def open_nvml() -> Any:
    """The initialised ``pynvml`` module; raises ImportError or an NVML error where it cannot be used."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def handle_for(pynvml: Any, index: int, torch_uuid: Any) -> Any:
    """The NVML handle of torch's device ``index``. CUDA_VISIBLE_DEVICES renumbers devices for torch but not for
    NVML, so match by UUID where torch reports one."""
    if torch_uuid is not None:
        wanted = str(torch_uuid).removeprefix("GPU-")
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            uuid = text(pynvml.nvmlDeviceGetUUID(handle))
            if uuid.removeprefix("GPU-").removeprefix("MIG-") == wanted:
                return handle
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def device_handle(device: str) -> tuple[Any, Any]:
    """(pynvml, handle) for a ``cuda:N`` device; raises where NVML is absent or unusable."""
    pynvml = open_nvml()
    index = dev.index_of(device)
    return pynvml, handle_for(pynvml, index, getattr(dev.properties(index), "uuid", None))
