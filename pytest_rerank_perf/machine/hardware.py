"""Hardware profile: what machine the numbers come from, and a stable id to file baselines under.

GPU facts come from NVML (nvidia-ml-py) where it works, from torch otherwise. No GPU, no driver or no NVML
never crashes: the profile falls back to the CPU and says why in ``notes``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from . import device as dev
from . import nvml

_SOFTWARE = ("torch", "transformers", "sentence-transformers", "tokenizers", "pytest-benchmark", "nvidia-ml-py")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_bytes: int
    compute_capability: str
    uuid: str | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None  # the CUDA version the driver supports (NVML)
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    max_sm_clock_mhz: int | None = None
    throttle_reasons: tuple[str, ...] = ()
    mig_mode: str | None = None  # "enabled" | "disabled" | None when unsupported
    sm_count: int | None = None  # SMs this process sees (a MIG slice's share): scales the MFU peak


@dataclass(frozen=True)
class HardwareProfile:
    profile_id: str  # stable slug, e.g. "nvidia-h100-80gb-hbm3" or "cpu-amd-epyc-9554-2c"
    kind: str  # "cuda" | "cpu"
    cpu_model: str
    cpu_cores: int
    gpu: GpuInfo | None
    software: dict[str, str]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.gpu is None:
            return f"{self.profile_id}: CPU {self.cpu_model} ({self.cpu_cores} cores), no GPU"
        g = self.gpu
        parts = [
            f"{self.profile_id}: {g.name}",
            f"{g.memory_total_bytes / 2**30:.1f} GiB",
            f"sm_{g.compute_capability}",
        ]
        if g.driver_version:
            parts.append(f"driver {g.driver_version}")
        if g.power_limit_w:
            parts.append(f"{g.power_limit_w:.0f} W limit")
        if g.mig_mode == "enabled":
            parts.append("MIG enabled")
        return ", ".join(parts)


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in _SOFTWARE:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    with contextlib.suppress(ImportError):
        versions["torch.cuda"] = dev.cuda_build() or "none"
    return versions


def _cpu_profile_id(model: str, cores: int, threads: int) -> str:
    # Core and thread counts are part of the id: a 2-core runner and a 64-core box must never share a CPU
    # baseline, nor a run on 1 torch thread with one on 2.
    name = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$", " ", model.lower())
    name = re.sub(r"\b\d+-core\b", " ", name)
    return f"cpu-{slugify(name)}-{cores}c-{threads}t"


def _gpu_from_torch(index: int, props: Any) -> GpuInfo:
    return GpuInfo(
        index=index,
        name=props.name,
        memory_total_bytes=int(props.total_memory),
        compute_capability=f"{props.major}.{props.minor}",
        sm_count=getattr(props, "multi_processor_count", None),
    )


def _nvml_gpu(index: int, torch_props: Any) -> tuple[GpuInfo | None, str | None]:
    """GpuInfo for CUDA device ``index`` from NVML, or (None, reason) when NVML cannot be used."""
    try:
        pynvml = nvml.open_nvml()
    except ImportError:
        return None, "nvidia-ml-py is not installed: pip install nvidia-ml-py"
    except Exception as exc:
        return None, f"NVML unavailable ({exc}); GPU facts come from torch only"
    try:
        handle = nvml.handle_for(pynvml, index, getattr(torch_props, "uuid", None))
        return _nvml_facts(pynvml, handle, _gpu_from_torch(index, torch_props)), None
    except Exception as exc:  # NVMLError, or the library-mismatch error outside its hierarchy
        return None, f"NVML query failed ({exc}); GPU facts come from torch only"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _nvml_facts(pynvml: Any, handle: Any, torch_gpu: GpuInfo) -> GpuInfo:
    """Each fact is optional: a MIG parent refuses its memory query without privileges, a virtual GPU its clocks;
    one refused query must not drop the rest."""

    def opt(name: str, *args: Any) -> Any:
        try:
            return getattr(pynvml, name)(*args)  # an older binding may lack the call: the fact is then unknown
        except Exception:
            return None

    memory = opt("nvmlDeviceGetMemoryInfo", handle)
    power_mw = opt("nvmlDeviceGetEnforcedPowerLimit", handle)
    cuda_v = opt("nvmlSystemGetCudaDriverVersion")
    capability = opt("nvmlDeviceGetCudaComputeCapability", handle)
    name = nvml.text(opt("nvmlDeviceGetName", handle)) or torch_gpu.name
    is_mig = bool(opt("nvmlDeviceIsMigDeviceHandle", handle))
    parent = opt("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle) if is_mig else handle
    mig = opt("nvmlDeviceGetMigMode", parent) if parent is not None else None
    try:
        mask: int | None = nvml.throttle_mask(pynvml, handle)
    except Exception:
        mask = None
    return dataclasses.replace(
        torch_gpu,
        name=name if " MIG " in name or " MIG " not in torch_gpu.name else torch_gpu.name,
        memory_total_bytes=int(memory.total) if memory is not None else torch_gpu.memory_total_bytes,
        compute_capability=f"{capability[0]}.{capability[1]}" if capability else torch_gpu.compute_capability,
        uuid=nvml.text(opt("nvmlDeviceGetUUID", handle)),
        driver_version=nvml.text(opt("nvmlSystemGetDriverVersion")),
        cuda_driver_version=f"{cuda_v // 1000}.{cuda_v % 1000 // 10}" if cuda_v else None,
        power_limit_w=power_mw / 1000 if power_mw else None,
        sm_clock_mhz=opt("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_SM),
        mem_clock_mhz=opt("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_MEM),
        max_sm_clock_mhz=opt("nvmlDeviceGetMaxClockInfo", handle, pynvml.NVML_CLOCK_SM),
        throttle_reasons=throttle_names(pynvml, mask),
        mig_mode="enabled" if is_mig else None if mig is None else ("enabled" if mig[0] else "disabled"),
    )


def throttle_names(pynvml: Any, mask: int | None) -> tuple[str, ...]:
    if not mask:
        return ()
    names = []
    for attr in dir(pynvml):
        prefix = "nvmlClocksThrottleReason"
        if attr.startswith(prefix) and attr not in ("nvmlClocksThrottleReasonAll", "nvmlClocksThrottleReasonNone"):
            bit = getattr(pynvml, attr)
            if isinstance(bit, int) and bit and mask & bit == bit:
                names.append(attr.removeprefix(prefix))
    return tuple(sorted(set(names)))


def detect(device: str = "auto") -> HardwareProfile:
    """Profile of the machine for ``device`` ("auto", "cpu", "cuda" or "cuda:N"). Never raises for a missing GPU."""
    notes: list[str] = []
    cpu, cores = cpu_model(), usable_cores()
    gpu: GpuInfo | None = None
    if device != "cpu":
        if not dev.cuda_available():
            notes.append("no CUDA device visible to torch")
        else:
            index = dev.index_of(device) if dev.is_cuda(device) else dev.current_index()
            props = dev.properties(index)
            gpu, reason = _nvml_gpu(index, props)
            if gpu is None:
                notes.append(reason or "NVML unavailable")
                gpu = _gpu_from_torch(index, props)
    if gpu is None:
        import torch

        profile_id = _cpu_profile_id(cpu, cores, torch.get_num_threads())
        return HardwareProfile(profile_id, "cpu", cpu, cores, None, software_versions(), tuple(notes))
    profile_id = slugify(gpu.name)
    if not profile_id.startswith(("nvidia", "amd")):
        profile_id = f"nvidia-{profile_id}"  # NVML names older cards "Tesla T4"; keep the vendor in the id
    if gpu.mig_mode == "enabled" and "-mig-" not in profile_id:
        profile_id += "-mig"  # a slice whose size NVML and torch did not name
    return HardwareProfile(profile_id, "cuda", cpu, cores, gpu, software_versions(), tuple(notes))
