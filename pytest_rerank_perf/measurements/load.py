"""The dynamic batcher under load, against per-request fixed-batch ``predict`` (the concurrent scenarios).

For each server (per-request predict, and the batcher at a few ``max_batch`` values) an open-loop Poisson load
searches for the highest arrival rate whose p99 request latency meets the scenario's SLO; a closed-loop sweep of
concurrent callers then shows the best batcher's throughput and latency as load grows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ..backends import Pair, Reranker
from ..machine import device as dev
from ..progress import say
from ..scenarios import Scenario
from ..serving.batcher_config import BusyMeter, encoded_predict, token_ids
from ..serving.batching import BatcherConfig, DynamicBatcher
from ..serving.loadgen import LoadPoint, RateSearch, closed_loop, find_max_rate, open_loop
from ..tables import Table, ms, rate
from ..workloads.workload import WorkloadSpec, build_workload

MAX_WAIT_S = 0.002
POOL_REQUESTS = 32  # distinct requests in the pool; request i reuses pool slot i % 32
Submit = Callable[[int], Awaitable[Any]]


@dataclass(frozen=True)
class LoadSizing:
    """How much load the procedure offers. A GPU's sizing buys precision; the CPU fallback's shows the procedure
    working end to end (predict and a batcher searched, the bound judged, a concurrency sweep drawn) in seconds."""

    point_s: float  # offered-load duration of one rate point
    min_requests: int  # requests per rate point, however short the point
    refine_steps: int  # geometric bisections between the last passing and the first failing rate
    max_batches: tuple[int, ...]  # the batchers searched, by max_batch
    concurrency: tuple[int, ...]  # callers of the closed-loop sweep
    sweep_requests: tuple[int, int]  # requests per sweep point: (at least, per caller)

    def sweep_size(self, callers: int) -> int:
        least, per_caller = self.sweep_requests
        return max(least, per_caller * callers)


GPU_LOAD = LoadSizing(2.0, 50, 3, (32, 128), (1, 4, 16, 64), (64, 8))
# The CPU: the max rate to within 2^(1/4) (19%), the batcher whose max_batch serves 10-pair requests (128 only
# waits longer there), 3 caller counts; ~10 s at the tiny twin's ~40 requests/s. At least 12 requests a point (its
# p99 is their slowest, as it would be of 20): a busy machine's ~10 requests/s must not stretch points to 2 s.
CPU_LOAD = LoadSizing(0.5, 12, 2, (32,), (1, 4, 16), (16, 2))


def load_sizing(device: str) -> LoadSizing:
    return GPU_LOAD if dev.is_cuda(device) else CPU_LOAD


def point_seconds(device: str) -> float:
    """Offered-load duration of one rate point."""
    return load_sizing(device).point_s


async def _search(
    submit: Submit,
    name: str,
    docs: int,
    p99: float,
    sizing: LoadSizing,
    meter: BusyMeter,
    host: BusyMeter | None = None,
) -> RateSearch:
    # One caller at a time gives the service time; start the search at half that rate.
    probe = await closed_loop(submit, 1, 20, docs, server=name)
    start = max(0.5, 0.5 * probe.throughput_rps)

    async def at(rate: float) -> LoadPoint:
        requests = int(min(5000, max(sizing.min_requests, rate * sizing.point_s)))
        busy, tokenizing = meter.seconds, host.seconds if host else 0.0
        point = await open_loop(submit, rate, requests, docs, seed=int(rate * 1000), server=name)
        host_busy = (host.seconds - tokenizing) / point.duration_s if host else None
        return replace(point, model_busy=(meter.seconds - busy) / point.duration_s, host_busy=host_busy)

    return await find_max_rate(at, p99, start, refine_steps=sizing.refine_steps, service=probe)


async def _fixed_batch(
    model: Reranker, pool: list[list[Pair]], docs: int, p99: float, sizing: LoadSizing
) -> RateSearch:
    """Per-request predict at a fixed batch size, one request at a time (a single worker thread)."""
    loop = asyncio.get_running_loop()
    meter = BusyMeter()
    predict = meter.wrap(model.predict)  # predict tokenizes inside the call: here tokenization is the "model"
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fixed-predict") as single:

        async def submit(i: int) -> Any:
            return await loop.run_in_executor(single, predict, pool[i % len(pool)], docs)

        return await _search(submit, f"predict-bs{docs}", docs, p99, sizing, meter)


async def drive(
    model: Reranker, pool: list[list[Pair]], scenario: Scenario, seconds: float, sizing: LoadSizing
) -> dict[str, Any]:
    """Every server's rate search, then a concurrency sweep of the best batcher: the scenario's load result.
    ``seconds``: each rate point's offered-load duration (``sizing`` says the rest)."""
    sizing = replace(sizing, point_s=seconds)
    docs, p99 = scenario.request_pairs, scenario.p99_s or 1.0
    reference = f"predict-bs{docs}"
    say(f"rerank-perf: load, scenario {scenario.name}: searching the max rate of {reference} ...")
    search = await _fixed_batch(model, pool, docs, p99, sizing)
    servers: dict[str, Any] = {reference: {**search.to_dict(), "max_batch": docs}}

    # tokenized once, in the batcher's tokenizer thread; the model is given token ids (one call per batch)
    prepare, batch_predict = token_ids(model), encoded_predict(model)
    best: tuple[float, BatcherConfig] | None = None
    for max_batch in sizing.max_batches:
        config = BatcherConfig(max_batch=max_batch, max_wait_s=MAX_WAIT_S)
        meter, host = BusyMeter(), BusyMeter()
        say(f"rerank-perf: load, scenario {scenario.name}: searching the max rate of batcher-{config.id} ...")
        async with DynamicBatcher(meter.wrap(batch_predict), config, prepare=host.wrap(prepare)) as batcher:
            submit = lambda i, b=batcher: b.rerank(pool[i % len(pool)])  # noqa: E731
            search = await _search(submit, f"batcher-{config.id}", docs, p99, sizing, meter, host)
            mean_batch = batcher.stats.mean_batch
        servers[f"batcher-{config.id}"] = {**search.to_dict(), "max_batch": max_batch, "mean_batch": mean_batch}
        if search.max_rate and (best is None or search.max_rate > best[0]):
            best = (search.max_rate, config)

    sweep: list[dict[str, Any]] = []
    if best is not None:
        config = best[1]
        callers = ", ".join(map(str, sizing.concurrency))
        say(f"rerank-perf: load, scenario {scenario.name}: closed loop of batcher-{config.id} at {callers} callers")
        async with DynamicBatcher(batch_predict, config, prepare=prepare) as batcher:
            for c in sizing.concurrency:
                submit = lambda i, b=batcher: b.rerank(pool[i % len(pool)])  # noqa: E731
                point = await closed_loop(submit, c, sizing.sweep_size(c), docs, server=f"batcher-{config.id}")
                sweep.append(point.to_dict())
    return {
        "scenario": scenario.name,
        "pairs_per_request": docs,
        "p99_target_s": p99,
        "reference": reference,
        "servers": servers,
        "closed_loop": sweep,
    }


def request_pool(model: Reranker, spec: WorkloadSpec, docs: int) -> list[list[Pair]]:
    """``POOL_REQUESTS`` seeded requests of ``docs`` pairs each."""
    workload = build_workload(spec, model.tokenizer, docs * POOL_REQUESTS)
    return [list(workload.pairs[i * docs : (i + 1) * docs]) for i in range(POOL_REQUESTS)]


def measure_load(model: Reranker, spec: WorkloadSpec, scenario: Scenario) -> LoadResults:
    """The load procedure for one concurrent scenario, on a pool of seeded requests of its size."""
    pool = request_pool(model, spec, scenario.request_pairs)
    device = model.device
    result = asyncio.run(drive(model, pool, scenario, point_seconds(device), load_sizing(device)))
    return LoadResults({scenario.name: result})


def _bound(result: Mapping[str, Any]) -> str:
    """``model-bound: model busy 93% at saturation``; the search's early stop; "" where not metered."""
    if result.get("stopped"):
        return f"search stopped: {result['stopped']}"
    bound, busy, host = result.get("bound"), result.get("model_busy"), result.get("host_busy")
    if bound is None or busy is None:
        return ""
    tokenizer = "" if host is None else f", tokenizer {host:.0%}"
    return f"{bound}-bound: model busy {busy:.0%}{tokenizer} at saturation"


def _p(point: Mapping[str, Any], key: str) -> float | None:
    return (point.get("latency") or {}).get(key)


@dataclass
class LoadResults:
    key: ClassVar[str] = "load"
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)  # concurrent scenario -> its load result

    def report_fields(self) -> dict[str, Any]:
        return {"load": self.scenarios}

    @classmethod
    def empty_fields(cls) -> dict[str, Any]:
        return {"load": {}}

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> LoadResults | None:
        load = data.get("load") or {}
        return cls(dict(load)) if load else None

    def merge(self, other: LoadResults) -> LoadResults:
        return LoadResults({**self.scenarios, **other.scenarios})

    def points(self) -> list[dict[str, Any]]:
        return [p for load in self.scenarios.values() for s in load["servers"].values() for p in s["points"]]

    def summary_lines(self) -> list[str]:
        out = []
        for name, load in sorted(self.scenarios.items()):
            out.append(
                f"dynamic batcher, scenario {name}: {load['pairs_per_request']} pairs per request, "
                f"max Poisson rate with p99 <= {load['p99_target_s'] * 1e3:.0f} ms:"
            )
            for server, result in load["servers"].items():
                best = result.get("max_rate")
                text = _bound(result)
                bound = f"  ({text})" if text else ""
                out.append(f"    {server:<28} {'none' if best is None else f'{best:,.1f} req/s'}{bound}")
        return out

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        out: list[str] = []
        for name, load in sorted(self.scenarios.items()):
            out += _scenario_markdown(name, load, plots)
        return out


_DETAIL = ("server", "offered req/s", "issued req/s", "p50", "p95", "p99", "pairs/s", "meets")


def _scenario_markdown(name: str, load: Mapping[str, Any], plots: Mapping[str, str]) -> list[str]:
    target = load["p99_target_s"]
    out = [
        "",
        f"## Dynamic batcher under load: scenario `{name}`",
        "",
        f"{load['pairs_per_request']} pairs per request, Poisson arrivals (open loop); latency from scheduled "
        f"arrival; p99 target {ms(target)}. `{load['reference']}` is per-request `predict` with a fixed batch, "
        "one request at a time.",
        "",
    ]
    summary: list[tuple[str, ...]] = []
    detail: list[tuple[str, ...]] = []
    for server, result in load["servers"].items():
        points = sorted(result["points"], key=lambda p: p["target_rate"])
        best = next((p for p in points if p["target_rate"] == result.get("max_rate")), None)
        if best is None:
            summary.append((f"`{server}`", "none", "-", "-", "-"))
        else:
            max_rate = f"{rate(best['target_rate'])} req/s"
            bound = _bound(result) or "-"
            summary.append((f"`{server}`", max_rate, rate(best["pairs_per_s"]), ms(_p(best, "p99")), bound))
        for p in points:
            p99 = _p(p, "p99")
            meets = "yes" if p["errors"] == 0 and p99 is not None and p99 <= target else "no"
            detail.append(
                (
                    f"`{server}`",
                    rate(p["target_rate"]),
                    rate(p["arrival_rate"]),
                    ms(_p(p, "p50")),
                    ms(_p(p, "p95")),
                    ms(p99),
                    rate(p["pairs_per_s"]),
                    meets,
                )
            )
    header = ("server", f"max rate with p99 <= {ms(target)}", "pairs/s there", "p99 there", "bound by")
    out += Table(header, summary).markdown()
    if f"load-{name}.png" in plots:
        out += ["", f"![latency vs load](load-{name}.png)"]
    out += [
        "",
        "<details><summary>p99 vs offered rate, every point</summary>",
        "",
        *Table(_DETAIL, detail).markdown(),
        "",
        "</details>",
    ]
    sweep = load.get("closed_loop") or []
    if sweep:
        rows = [
            (
                str(p["concurrency"]),
                rate(p["throughput_rps"]),
                rate(p["pairs_per_s"]),
                ms(_p(p, "p50")),
                ms(_p(p, "p99")),
            )
            for p in sweep
        ]
        table = Table(("concurrent callers", "req/s", "pairs/s", "p50", "p99"), rows)
        out += ["", f"Closed loop, `{sweep[0]['server']}`:", "", *table.markdown()]
        if f"concurrency-{name}.png" in plots:
            out += ["", f"![concurrency sweep](concurrency-{name}.png)"]
    return out
