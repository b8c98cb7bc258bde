"""Measuring one matrix cell: a (num_pairs, batch_size) predict call, timed through pytest-benchmark.

The measured callable is ``CrossEncoder.predict`` plus a device synchronisation, wrapped by the call tracker; the
per-batch CUDA events and the NVML sampler are the only other things alive during the rounds, and
``benchmarks/test_harness_overhead.py`` measures what they cost against a bare predict loop.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .flops import flops_per_batch, peak_flops
from .hardware import HardwareProfile
from .memory import MemoryResult, MemoryTracker
from .model import LoadedModel
from .timing import BatchTracker, CallTracker, Percentiles, synchronizer
from .workload import Workload

Status = Literal["ok", "oom", "skipped"]


@dataclass(frozen=True, order=True)
class Cell:
    num_pairs: int
    batch_size: int

    @property
    def id(self) -> str:
        return f"n{self.num_pairs}-bs{self.batch_size}"


@dataclass(frozen=True)
class RoundsPolicy:
    """Enough rounds for a stable median: at least ``min_rounds`` and ``min_time_s`` of measured time."""

    warmup_rounds: int
    min_rounds: int
    min_time_s: float
    max_rounds: int = 200
    fixed_rounds: int | None = None  # --rerank-rounds N overrides the calibration

    @staticmethod
    def for_device(device: str, fixed_rounds: int | None = None, recording: bool = False) -> RoundsPolicy:
        """Recording a baseline takes more rounds: its samples are the reference for every later comparison."""
        scale = 3 if recording else 1
        if device.startswith("cuda"):
            return RoundsPolicy(3, 10 * scale, 1.0 * scale, fixed_rounds=fixed_rounds)
        return RoundsPolicy(2, 10 * scale, 0.5 * scale, fixed_rounds=fixed_rounds)

    def rounds_for(self, seconds_per_call: float) -> int:
        if self.fixed_rounds:
            return self.fixed_rounds
        wanted = math.ceil(self.min_time_s / max(seconds_per_call, 1e-9))
        return max(self.min_rounds, min(self.max_rounds, wanted))


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    workload_id: str
    status: Status
    rounds: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    pairs_per_s: float | None = None
    tokens_per_s: float | None = None
    padded_tokens_per_s: float | None = None
    latency_call: Percentiles | None = None
    latency_batch: Percentiles | None = None
    memory: MemoryResult | None = None
    mfu: float | None = None
    reason: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    call_samples: tuple[float, ...] = ()  # seconds per measured round: what the regression gate tests
    batch_round_samples: tuple[float, ...] = ()  # mean forward seconds per batch, per measured round

    def extra_info(self) -> dict[str, Any]:
        """What lands in pytest-benchmark's JSON for this cell."""
        mem = self.memory or MemoryResult(None, None, None, None)
        ident = self.identity
        return {
            "status": self.status,
            "batch_size": self.cell.batch_size,
            "num_pairs": self.cell.num_pairs,
            "workload_id": self.workload_id,
            "rounds": self.rounds,
            "pairs_per_s": self.pairs_per_s,
            "tokens_per_s": self.tokens_per_s,
            "padded_tokens_per_s": self.padded_tokens_per_s,
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            "latency_s": {
                "call": self.latency_call.to_dict() if self.latency_call else None,
                "batch": self.latency_batch.to_dict() if self.latency_batch else None,
            },
            "peak_vram_allocated_bytes": mem.peak_allocated_bytes,
            "peak_vram_reserved_bytes": mem.peak_reserved_bytes,
            "nvml_peak_process_bytes": mem.nvml_peak_process_bytes,
            "nvml_peak_device_used_bytes": mem.nvml_peak_device_used_bytes,
            "mfu": self.mfu,
            "device": ident.get("device"),
            "model_id": ident.get("key"),
            "model_source": ident.get("source"),
            "profile_id": ident.get("profile_id"),
            "dtype": ident.get("dtype"),
            "max_length": ident.get("max_length"),
            "reason": self.reason or None,
        }


def is_oom(exc: BaseException) -> bool:
    """Only CUDA's out-of-memory error counts; any other RuntimeError is a real failure and propagates."""
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError)


def free_device_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def run_identity(model: LoadedModel, profile: HardwareProfile) -> dict[str, Any]:
    """What every result of a run is tagged with: the model identity and its key, the profile, the device."""
    return {
        **model.identity.to_dict(),
        "key": model.identity.key(),
        "profile_id": profile.profile_id,
        "device": model.device,  # which GPU of a multi-GPU run measured it; not part of the key
    }


class SlowdownInjector:
    """Test hook (``--rerank-inject-slowdown``): stretches every forward by a fraction of its own duration.

    It stands in for a real regression when proving the gate. Its hooks are registered before the batch tracker's,
    so the extra time lands inside the measured forward, as a slower kernel would.
    """

    def __init__(self, module: Any, device: str, fraction: float) -> None:
        self.fraction = fraction
        self.sync = synchronizer(device)
        self._start = 0.0
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    def _pre(self, *_: Any) -> None:
        self.sync()
        self._start = time.perf_counter()

    def _post(self, *_: Any) -> None:
        self.sync()
        until = time.perf_counter() + (time.perf_counter() - self._start) * self.fraction
        while time.perf_counter() < until:  # busy-wait: sleep() overshoots sub-millisecond waits
            pass


class CellRunner:
    """Runs cells for one loaded model on one device; remembers out-of-memory boundaries between cells."""

    def __init__(
        self, model: LoadedModel, profile: HardwareProfile, policy: RoundsPolicy, inject_slowdown: float = 0.0
    ) -> None:
        self.model = model
        self.profile = profile
        self.policy = policy
        self.device = model.device
        # smallest batch size that ran out of memory, per (workload, max_length): larger ones are skipped
        self.oom_floor: dict[tuple[str, int], int] = {}
        self.identity = run_identity(model, profile)
        gpu = profile.gpu
        self.peak = peak_flops(gpu.name if gpu else None, model.identity.dtype) if self.device != "cpu" else None
        # One memory tracker per runner: opening NVML and finding the device handle is done once, not per cell.
        self.memory = MemoryTracker(self.device)
        if inject_slowdown:
            SlowdownInjector(model.cross_encoder[0], self.device, inject_slowdown)

    def predict_fn(self, workload: Workload, batch_size: int) -> Callable[[], Any]:
        ce, pairs = self.model.cross_encoder, list(workload.pairs)
        return lambda: ce.predict(pairs, batch_size=batch_size, show_progress_bar=False)

    def instruments(self, workload: Workload, batch_size: int) -> tuple[CallTracker, BatchTracker, MemoryTracker]:
        """Everything alive while a cell's rounds run. The harness-overhead benchmark measures this same set."""
        calls = CallTracker(self.predict_fn(workload, batch_size), self.device)
        return calls, BatchTracker(self.model.cross_encoder[0], self.device), self.memory

    def _mfu(self, workload: Workload, batch_size: int, seconds: float) -> float | None:
        if self.peak is None:
            return None
        config = self.model.cross_encoder.model.config  # type: ignore[union-attr]  # set for every loaded model
        shapes = workload.batch_shapes(batch_size, self.model.identity.max_length)
        return sum(flops_per_batch(config, b, n) for b, n in shapes) / seconds / self.peak

    def run(self, benchmark: Any, workload: Workload, batch_size: int) -> CellResult:
        """Measure one cell with ``benchmark.pedantic``. Out-of-memory is a result, not a crash."""
        cell = Cell(len(workload), batch_size)
        max_length = self.model.identity.max_length
        key = (workload.id, max_length)
        floor = self.oom_floor.get(key)
        if floor is not None and batch_size >= floor:
            return CellResult(cell, workload.id, "skipped", reason=f"batch_size {floor} ran out of memory",
                              identity=self.identity)  # fmt: skip
        stats = workload.batch_stats(batch_size, max_length)
        calls, batches, memory = self.instruments(workload, batch_size)
        oom_message = ""
        memory.start()
        try:
            for _ in range(self.policy.warmup_rounds):  # warm-up doubles as calibration and as the OOM probe
                calls()
            rounds = self.policy.rounds_for(Percentiles.of(calls.samples).median)
            batches.start()
            if getattr(benchmark, "disabled", False):
                # pytest-benchmark turns itself off under xdist or --benchmark-disable and would run one call;
                # the trackers time every call themselves, so run the same rounds here.
                for _ in range(1 + rounds):
                    calls()
            else:
                benchmark.pedantic(calls, rounds=rounds, warmup_rounds=1, iterations=1)
        except Exception as exc:
            if not is_oom(exc):
                raise
            oom_message = str(exc).splitlines()[0]  # keep text only: the traceback pins the failed tensors
        finally:
            batches.stop()
            memory.stop()
        if oom_message:
            free_device_memory(self.device)
            self.oom_floor[key] = min(batch_size, self.oom_floor.get(key, batch_size))
            return CellResult(cell, workload.id, "oom", reason=f"CUDA out of memory: {oom_message}",
                              real_tokens=stats.real_tokens, padded_tokens=stats.padded_tokens,
                              identity=self.identity)  # fmt: skip
        latency = calls.result(rounds)
        seconds = latency.median
        return CellResult(
            cell=cell,
            workload_id=workload.id,
            status="ok",
            rounds=rounds,
            real_tokens=stats.real_tokens,
            padded_tokens=stats.padded_tokens,
            pairs_per_s=len(workload) / seconds,
            tokens_per_s=stats.real_tokens / seconds,
            padded_tokens_per_s=stats.padded_tokens / seconds,
            latency_call=latency,
            latency_batch=batches.result(last=rounds * stats.batches),
            memory=memory.result(),
            mfu=self._mfu(workload, batch_size, seconds),
            identity=self.identity,
            call_samples=tuple(calls.samples[-rounds:]),
            batch_round_samples=batches.per_round(rounds, stats.batches),
        )
