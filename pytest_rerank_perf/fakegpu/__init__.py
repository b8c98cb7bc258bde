"""A fake GPU for tests: ``torch.cuda`` and ``pynvml`` stand-ins installed at the seams (``device.use_cuda``,
``nvml.use_nvml``), so the CUDA and NVML branches of the harness run on a machine without a GPU.

    with FakeGpu(["h100", "h100"]).installed() as gpu:
        model = gpu.attach(load_model("twin-tiny", device="cuda:1"))

Models run for real on the CPU; ``attach`` makes their forwards allocate on the fake device (see ``cuda.py``).
For pytest runs (pytester, xdist workers): ``-p pytest_rerank_perf.fakegpu.plugin`` with the fake's settings as
JSON in ``RERANK_PERF_FAKE_GPU``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from ..machine import device as dev
from ..machine import nvml as nvml_seam
from .cuda import FakeCuda
from .nvml import FakeNvml
from .specs import CATALOGUE, GiB, GpuSpec

M = TypeVar("M")


class FakeGpu:
    def __init__(
        self,
        gpus: Sequence[str | GpuSpec] = ("h100",),
        budget_bytes: int | None = None,
        bytes_per_token: int = 2**20,
        cublas_oom: bool = False,
        **nvml_options: Any,
    ) -> None:
        specs = [CATALOGUE[g] if isinstance(g, str) else g for g in gpus]
        self.cuda = FakeCuda(specs, budget_bytes, bytes_per_token)
        for device in self.cuda.devices:
            device.allocator.cublas_oom = cublas_oom
        self.nvml = FakeNvml(self.cuda, **nvml_options)

    def install(self) -> None:
        dev.use_cuda(self.cuda)
        nvml_seam.use_nvml(self.nvml)

    @staticmethod
    def uninstall() -> None:
        dev.use_cuda(None)
        nvml_seam.use_nvml(None)

    @contextlib.contextmanager
    def installed(self) -> Iterator[FakeGpu]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def attach(self, model: M) -> M:
        """Make a loaded ``Reranker`` on ``cuda:N`` allocate its weights and forwards on fake device N."""
        reranker: Any = model
        self.cuda.attach(reranker.batch_module(), dev.index_of(reranker.device))
        return model


__all__ = ["CATALOGUE", "FakeCuda", "FakeGpu", "FakeNvml", "GiB", "GpuSpec"]
