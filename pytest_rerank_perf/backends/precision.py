"""Which precision a run uses on a device: fp16 on CUDA and fp32 on the CPU unless told otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import DeviceError
from ..machine import device as dev
from ..validation import canonical_dtype

if TYPE_CHECKING:
    import torch


def resolve_dtype(dtype: str, device: str) -> str:
    """``fp32`` | ``fp16`` | ``bf16`` for ``device``; a clear error where the device cannot compute it."""
    canonical = canonical_dtype(dtype)
    if canonical == "auto":
        return "fp16" if dev.is_cuda(device) else "fp32"
    if canonical == "bf16" and not dev.bf16_supported(device):
        raise DeviceError(f"--rerank-dtype bf16: {device} does not support bfloat16; use fp16.")
    return canonical


def torch_dtype(canonical: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[canonical]
