"""A short machine-speed fingerprint, recorded with every baseline: a fixed matrix multiply's FLOP/s and its noise.

Two machines can share a profile id (two "AMD EPYC" VMs of different generations, one GPU model under another power
limit) and differ by far more than any regression the gate looks for. The fingerprint says so before the cells do:
when the GEMM rate moved beyond what its own noise explains, or the GPU's power limit or maximum clock differs, the
verdict is "different machine" (``gate/machine.py``), not a list of regressions or improvements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import device as dev

REPEATS = 15
# (side, dtype): 512^3 fp32 is ~5 ms on one CPU core; 8192^3 fp16 is ~1.5 ms on an H100 (tensor cores)
_SHAPES = {"cpu": (512, "float32"), "cuda": (8192, "float16")}


@dataclass(frozen=True)
class Fingerprint:
    gemm: str  # what was timed, e.g. "fp32 512x512x512 on cpu"
    flops: float  # median FLOP/s over the repeats
    noise: float  # robust relative spread of the repeats (IQR / 1.349 / median)
    power_limit_w: float | None = None
    max_sm_clock_mhz: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any] | None) -> Fingerprint | None:
        if not data or not data.get("flops"):
            return None
        return Fingerprint(
            str(data.get("gemm")),
            float(data["flops"]),
            float(data.get("noise") or 0.0),
            data.get("power_limit_w"),
            data.get("max_sm_clock_mhz"),
        )


def _timed(run: Any, sync: Any) -> float:
    sync()
    start = dev.clock()
    run()
    sync()
    return dev.clock() - start


def measure(device: str, gpu: dict[str, Any] | None = None) -> Fingerprint:
    """Time ``REPEATS`` multiplies of a fixed square matrix on ``device`` after two warm-up ones."""
    import torch

    # where the tensors really live: under the fake GPU a "cuda" device computes on the CPU
    kind = "cuda" if dev.is_cuda(dev.placement(device)) else "cpu"
    size, dtype_name = _SHAPES[kind]
    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dev.placement(device), dtype)
    b = torch.randn(size, size, generator=generator).to(dev.placement(device), dtype)
    sync = dev.synchronizer(device)
    with torch.inference_mode():
        for _ in range(2):
            _timed(lambda: a @ b, sync)
        seconds = np.array([_timed(lambda: a @ b, sync) for _ in range(REPEATS)])
    rates = 2 * size**3 / seconds
    q1, median, q3 = np.percentile(rates, [25, 50, 75])
    gpu = gpu or {}
    return Fingerprint(
        gemm=f"{'fp16' if kind == 'cuda' else 'fp32'} {size}x{size}x{size} on {kind}",
        flops=float(f"{median:.4g}"),
        noise=float(f"{(q3 - q1) / 1.349 / median:.3g}"),
        power_limit_w=gpu.get("power_limit_w"),
        max_sm_clock_mhz=gpu.get("max_sm_clock_mhz"),
    )
