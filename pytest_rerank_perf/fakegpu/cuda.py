"""A stand-in for ``torch.cuda``: devices, a current device per thread, timing events, a caching allocator.

Forwards run for real on the CPU (``device.placement``); ``FakeCuda.attach`` hooks the model's per-batch module so
each forward allocates ``batch x tokens x bytes_per_token`` on its fake device for its duration, on top of the
resident weights, and raises CUDA's out-of-memory above the budget. Events behave as CUDA's do: one recorded on a
device's stream cannot be read until that device has been synchronised after it.
"""

from __future__ import annotations

import itertools
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..machine import device as dev
from .specs import GpuSpec

BLOCK = 2 * 2**20  # the caching allocator reserves in 2 MiB blocks and keeps freed ones cached


class Allocator:
    """The caching allocator's bookkeeping: allocated, reserved (cached), their peaks, ``empty_cache``."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.allocated = self.reserved = self.peak_allocated = self.peak_reserved = 0
        self.cublas_oom = False  # report an out-of-memory as cuBLAS does: a RuntimeError naming the failed alloc

    def malloc(self, nbytes: int) -> None:
        if self.allocated + nbytes > self.budget:
            if self.cublas_oom:
                raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {nbytes / 2**30:.2f} GiB. GPU 0 has a total capacity of "
                f"{self.budget / 2**30:.2f} GiB of which {(self.budget - self.allocated) / 2**30:.2f} GiB is free."
            )
        self.allocated += nbytes
        self.reserved = max(self.reserved, -(-self.allocated // BLOCK) * BLOCK)
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_reserved = max(self.peak_reserved, self.reserved)

    def free(self, nbytes: int) -> None:
        self.allocated -= nbytes  # the blocks stay reserved: cached for the next allocation

    def empty_cache(self) -> None:
        self.reserved = -(-self.allocated // BLOCK) * BLOCK

    def reset_peaks(self) -> None:
        self.peak_allocated, self.peak_reserved = self.allocated, self.reserved


@dataclass
class FakeDevice:
    spec: GpuSpec
    allocator: Allocator
    synced_tick: int = 0
    forwards: int = 0  # forwards run on this device (tests check where work landed)


@dataclass(frozen=True)
class FakeStream:
    device_index: int


class FakeEvent:
    def __init__(self, cuda: FakeCuda, enable_timing: bool = False) -> None:
        self.cuda = cuda
        self.enable_timing = enable_timing
        self.device: int | None = None
        self.tick = 0
        self.time = 0.0

    def record(self, stream: FakeStream | None = None) -> None:
        self.device = self.cuda.current_device() if stream is None else stream.device_index
        self.tick, self.time = self.cuda.next_tick(), dev.clock()  # a test's virtual clock, if one is installed

    def _check_done(self) -> None:
        if self.device is None:
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        if self.cuda.devices[self.device].synced_tick < self.tick:
            raise RuntimeError("CUDA error: device not ready")

    def elapsed_time(self, end: FakeEvent) -> float:
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        self._check_done()
        end._check_done()
        return (end.time - self.time) * 1000.0


class FakeCuda:
    """The subset of ``torch.cuda`` that ``pytest_rerank_perf.machine.device`` uses, for ``len(gpus)`` fake devices."""

    OutOfMemoryError = torch.cuda.OutOfMemoryError
    version_cuda = "12.8"

    def __init__(self, gpus: Sequence[GpuSpec], budget_bytes: int | None = None, bytes_per_token: int = 2**20):
        self.devices = [FakeDevice(s, Allocator(budget_bytes or s.memory_bytes)) for s in gpus]
        self.bytes_per_token = bytes_per_token
        self._local = threading.local()
        self._ticks = itertools.count(1)
        self._lock = threading.Lock()

    def next_tick(self) -> int:
        with self._lock:
            return next(self._ticks)

    def _index(self, index: Any = None) -> int:
        i = self.current_device() if index is None else int(index)
        if not 0 <= i < len(self.devices):
            raise RuntimeError("CUDA error: invalid device ordinal")
        return i

    def is_available(self) -> bool:
        return bool(self.devices)

    def device_count(self) -> int:
        return len(self.devices)

    def current_device(self) -> int:
        return int(getattr(self._local, "index", 0))

    def set_device(self, index: int) -> None:
        self._local.index = self._index(index)

    def get_device_properties(self, index: int) -> Any:
        i = self._index(index)
        spec = self.devices[i].spec
        return types.SimpleNamespace(
            name=spec.torch_name,
            total_memory=spec.memory_bytes,
            major=spec.capability[0],
            minor=spec.capability[1],
            multi_processor_count=spec.sms,
            uuid=spec.uuid(i).removeprefix("GPU-"),  # torch prints the bare UUID of a full GPU
        )

    def is_bf16_supported(self) -> bool:
        return self.devices[self.current_device()].spec.capability >= (8, 0)

    def synchronize(self, index: Any = None) -> None:
        self.devices[self._index(index)].synced_tick = self.next_tick()

    def Event(self, enable_timing: bool = False) -> FakeEvent:
        return FakeEvent(self, enable_timing)

    def current_stream(self, index: Any = None) -> FakeStream:
        return FakeStream(self._index(index))

    def reset_peak_memory_stats(self, index: Any = None) -> None:
        self.devices[self._index(index)].allocator.reset_peaks()

    def max_memory_allocated(self, index: Any = None) -> int:
        return self.devices[self._index(index)].allocator.peak_allocated

    def max_memory_reserved(self, index: Any = None) -> int:
        return self.devices[self._index(index)].allocator.peak_reserved

    def memory_allocated(self, index: Any = None) -> int:
        return self.devices[self._index(index)].allocator.allocated

    def memory_reserved(self, index: Any = None) -> int:
        return self.devices[self._index(index)].allocator.reserved

    def empty_cache(self) -> None:
        for device in self.devices:
            device.allocator.empty_cache()

    def attach(self, module: Any, device_index: int) -> None:
        """Account ``module``'s weights on the fake device and let each of its forwards allocate there."""
        target = self.devices[self._index(device_index)]
        target.allocator.malloc(sum(p.numel() * p.element_size() for p in module.parameters()))
        held: list[int] = []

        def pre(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            features = args[0] if args else kwargs
            batch, tokens = features["input_ids"].shape
            nbytes = int(batch * tokens * self.bytes_per_token)
            target.allocator.malloc(nbytes)
            held.append(nbytes)
            target.forwards += 1

        def post(*_: Any) -> None:
            target.allocator.free(held.pop())

        module.register_forward_pre_hook(pre, with_kwargs=True)
        module.register_forward_hook(post)
