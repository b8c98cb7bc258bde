"""The GPUs a fake can be: real NVML names, memory, SM counts and compute capabilities, and MIG slices of them."""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, replace

GiB = 2**30


@dataclass(frozen=True)
class GpuSpec:
    name: str  # exactly as NVML and torch report it
    memory_bytes: int
    sms: int
    capability: tuple[int, int]
    max_sm_mhz: int = 1980
    power_limit_mw: int = 700_000
    mig_profile: str | None = None  # "3g.40gb": this is a MIG slice of ``parent``
    parent: GpuSpec | None = None

    @property
    def torch_name(self) -> str:
        return f"{self.name} MIG {self.mig_profile}" if self.mig_profile else self.name

    def uuid(self, index: int) -> str:
        """A stable UUID per (name, index), prefixed the way NVML prefixes it (``GPU-`` or ``MIG-``)."""
        value = uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{self.torch_name}/{index}")
        return f"{'MIG' if self.mig_profile else 'GPU'}-{value}"

    def mig(self, profile: str, sms: int, memory_bytes: int) -> GpuSpec:
        return replace(self, memory_bytes=memory_bytes, sms=sms, mig_profile=profile, parent=self)


H100_SXM = GpuSpec("NVIDIA H100 80GB HBM3", 80 * GiB, 132, (9, 0))
H100_PCIE = GpuSpec("NVIDIA H100 PCIe", 80 * GiB, 114, (9, 0), 1755, 350_000)
H200 = GpuSpec("NVIDIA H200", 141 * GiB, 132, (9, 0))
A100_40GB = GpuSpec("NVIDIA A100-SXM4-40GB", 40 * GiB, 108, (8, 0), 1410, 400_000)
L4 = GpuSpec("NVIDIA L4", 23 * GiB, 58, (8, 9), 2040, 72_000)
L40 = GpuSpec("NVIDIA L40", 45 * GiB, 142, (8, 9), 2490, 300_000)
RTX_A1000 = GpuSpec("NVIDIA RTX A1000", 8 * GiB, 20, (8, 6), 1460, 50_000)
T4 = GpuSpec("Tesla T4", 15 * GiB, 40, (7, 5), 1590, 70_000)
H100_MIG_3G = H100_SXM.mig("3g.40gb", 60, 40 * GiB)
H100_MIG_1G = H100_SXM.mig("1g.10gb", 16, 10 * GiB)

CATALOGUE: dict[str, GpuSpec] = {
    "h100": H100_SXM,
    "h100-pcie": H100_PCIE,
    "h200": H200,
    "a100-40gb": A100_40GB,
    "l4": L4,
    "l40": L40,
    "rtx-a1000": RTX_A1000,
    "t4": T4,
    "h100-mig-3g": H100_MIG_3G,
    "h100-mig-1g": H100_MIG_1G,
}
