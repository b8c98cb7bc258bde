"""Measuring matrix cells: a round of a workload's predict calls at one batch_size, timed through pytest-benchmark.

A seeded workload's round is one predict call of num_pairs pairs; a data file's is one call per request (or per
chunk of num_pairs pairs), each timed as well (``trackers/requests.py``).

The measured callable is ``Reranker.predict`` plus a device synchronisation, wrapped by the call tracker; the
trackers in ``trackers.TRACKERS`` run during the measured rounds and nothing else does.
``measurements/overhead.py`` measures what they cost against a bare predict loop.
"""

from __future__ import annotations

from typing import Any

from ..backends import Reranker
from ..errors import UsageError
from ..machine import device as dev
from ..machine.flops import flops_per_batch, peak_flops
from ..machine.hardware import HardwareProfile
from ..stats import Percentiles
from ..trackers import TRACKERS, CallTracker, Span, Tracker, cell_fields, track
from ..trackers.breakdown import BreakdownResult, BreakdownTracker
from ..trackers.requests import RequestTimer
from ..workloads.workload import Workload
from .cell import Cell, CellResult, RoundsPolicy, Status, null_fields
from .variant_check import ReferenceScores, score_mismatch


def run_identity(model: Reranker, profile: HardwareProfile) -> dict[str, Any]:
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
    so the extra time lands inside the measured forward, as a slower kernel would. It waits on the device clock
    (``device.pause``): a busy-wait on the wall clock, an advance of a test's virtual clock.
    """

    def __init__(self, module: Any, device: str, fraction: float) -> None:
        self.fraction = fraction
        self.sync = dev.synchronizer(device)
        self._start = 0.0
        if getattr(module, "_rerank_slowed", False):  # variants share predict's module: slow it once
            return
        module._rerank_slowed = True
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    def _pre(self, *_: Any) -> None:
        self.sync()
        self._start = dev.clock()

    def _post(self, *_: Any) -> None:
        self.sync()
        dev.pause((dev.clock() - self._start) * self.fraction)


class Unbenchmarked:
    """What ``CellRunner.run`` is given outside pytest-benchmark: it then times its own rounds."""

    disabled = True


class CellRunner:
    """Runs cells for one reranker on one device; remembers out-of-memory boundaries between cells. A variant's
    runner is given ``predict``'s scores (``ReferenceScores``, shared by every variant) to match before its cells
    are measured."""

    def __init__(
        self,
        model: Reranker,
        profile: HardwareProfile,
        policy: RoundsPolicy,
        inject_slowdown: float = 0.0,
        reference: ReferenceScores | None = None,
    ) -> None:
        self.model = model
        self.reference = reference
        self.profile = profile
        self.policy = policy
        self.device = model.device
        # smallest batch size that ran out of memory, per (workload, max_length): larger ones are skipped
        self.oom_floor: dict[tuple[str, int], int] = {}
        self.identity = run_identity(model, profile)
        gpu = profile.gpu
        self.peak, self.why_no_mfu = (
            peak_flops(gpu.name, model.identity.dtype, gpu.sm_count, gpu.mig_mode == "enabled")
            if gpu is not None and dev.is_cuda(self.device)
            else (None, "MFU: not measured on the CPU")
        )
        module = model.batch_module()
        if inject_slowdown:
            if module is None:
                raise UsageError("--rerank-inject-slowdown: this backend exposes no per-batch module to slow down")
            SlowdownInjector(module, self.device, inject_slowdown)
        # built once per runner (NVML handles are opened once), started and stopped per cell
        self.trackers: list[Tracker] = [make(self.device, module) for make in TRACKERS]
        self.breakdown = BreakdownTracker(model, self.device, module)

    def call_tracker(self, workload: Workload, batch_size: int) -> CallTracker:
        """The measured callable: one predict call of the workload, synchronised."""
        model, pairs = self.model, list(workload.pairs)
        return CallTracker(lambda: model.predict(pairs, batch_size), self.device)

    def round_trackers(self, workload: Workload, batch_size: int) -> tuple[CallTracker, list[Tracker]]:
        """The measured callable, a round of the workload's predict calls, and what times each call: nothing more
        for a seeded workload (one call), a ``RequestTimer`` for a data file's requests or chunks."""
        if not workload.calls:
            return self.call_tracker(workload, batch_size), []
        calls = [list(workload.pairs[a:b]) for a, b in workload.call_slices()]
        model = self.model
        timer = RequestTimer(lambda pairs: model.predict(pairs, batch_size), calls, workload.shape, self.device)
        return CallTracker(timer, self.device), [timer]

    def _mfu(self, workload: Workload, batch_size: int, seconds: float) -> tuple[float | None, str | None]:
        """(MFU, None), or (None, why) where the GPU's peak or the model's shape is unknown."""
        config = self.model.flop_config()
        if self.peak is None:
            return None, self.why_no_mfu
        if config is None:
            return None, "MFU: this backend does not expose the model's shape"
        shapes = workload.batch_shapes(batch_size, self.model.identity.max_length, self.model.batches)
        return sum(flops_per_batch(config, b, n) for b, n in shapes) / seconds / self.peak, None

    def _not_run(self, cell: Cell, workload: Workload, status: Status, reason: str, **tokens: int) -> CellResult:
        fields = null_fields(reason)
        return CellResult(cell, workload.id, status, **tokens, fields=fields, reason=reason, identity=self.identity)

    def _skip(self, cell: Cell, workload: Workload) -> CellResult | None:
        floor = self.oom_floor.get((workload.id, self.model.identity.max_length))
        if floor is None or cell.batch_size < floor:
            return None
        return self._not_run(cell, workload, "skipped", f"batch_size {floor} ran out of memory")

    def _breakdown(self, calls: CallTracker, rounds: int) -> BreakdownResult:
        """A few instrumented rounds after the measured ones: where the call's time goes."""
        timed = self.breakdown.wrap(calls.fn)
        with track([self.breakdown]):
            for _ in range(min(rounds, self.policy.breakdown_rounds)):
                timed()
        return self.breakdown.result(Span(0, 0, 0))

    def _rounds(self, benchmark: Any, calls: CallTracker, per_call: list[Tracker]) -> int:
        """Warm up (which doubles as calibration and as the out-of-memory probe), then the measured rounds."""
        for _ in range(self.policy.warmup_rounds):
            calls()
        rounds = self.policy.rounds_for(Percentiles.of(calls.samples).median)
        with track([calls, *per_call, *self.trackers]):
            if getattr(benchmark, "disabled", False):
                # pytest-benchmark turns itself off under xdist or --benchmark-disable and would run one call;
                # the trackers time every call themselves, so run the same rounds here.
                for _ in range(rounds):
                    calls()
            else:
                benchmark.pedantic(calls, rounds=rounds, warmup_rounds=0, iterations=1)
        return rounds

    def run(self, benchmark: Any, workload: Workload, batch_size: int) -> CellResult:
        """Measure one cell with ``benchmark.pedantic``. Out-of-memory is a result, not a crash; so are a variant's
        wrong scores (checked before its speed is measured)."""
        cell = Cell(workload.num_pairs, batch_size, variant=self.model.variant)
        skipped = self._skip(cell, workload)
        if skipped is not None:
            return skipped
        max_length = self.model.identity.max_length
        stats = workload.batch_stats(batch_size, max_length, self.model.batches)
        tokens = {"real_tokens": stats.real_tokens, "padded_tokens": stats.padded_tokens}
        calls, per_call = self.round_trackers(workload, batch_size)
        dev.free_memory(self.device)  # nothing earlier cells or tests left cached counts towards this cell
        oom_message = ""
        try:
            wrong = score_mismatch(self.model, self.reference, workload, batch_size) if self.reference else None
            if wrong:
                return self._not_run(cell, workload, "rejected", wrong, **tokens)
            dev.free_memory(self.device)  # what the check left cached is not this cell's
            rounds = self._rounds(benchmark, calls, per_call)
            breakdown = self._breakdown(calls, rounds)
        except Exception as exc:
            if not dev.is_oom(exc):
                raise
            oom_message = str(exc).splitlines()[0]  # keep text only: the traceback pins the failed tensors
        if oom_message:
            dev.free_memory(self.device)
            key = (workload.id, max_length)
            self.oom_floor[key] = min(batch_size, self.oom_floor.get(key, batch_size))
            return self._not_run(cell, workload, "oom", f"CUDA out of memory: {oom_message}", **tokens)
        span = Span(calls.measured, len(workload), stats.batches)
        timed = calls.result(span)
        seconds = timed.latency.median
        results = [timed, *(t.result(span) for t in [*per_call, *self.trackers]), breakdown.against(seconds)]
        fields = cell_fields(results)
        fields["tokens_per_s"] = stats.real_tokens / seconds
        fields["padded_tokens_per_s"] = stats.padded_tokens / seconds
        fields["mfu"], why_no_mfu = self._mfu(workload, batch_size, seconds)
        if why_no_mfu:
            fields.setdefault("why_null", {})["mfu"] = why_no_mfu
        return CellResult(
            cell,
            workload.id,
            "ok",
            rounds=rounds,
            real_tokens=stats.real_tokens,
            padded_tokens=stats.padded_tokens,
            fields=fields,
            identity=self.identity,
        )
