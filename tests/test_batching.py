"""The dynamic batcher under concurrent callers: routing, cancellation, timeouts, errors, shutdown."""

from __future__ import annotations

import asyncio
import random
import threading
import zlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import numpy as np
import pytest

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.errors import RerankPerfError
from pytest_rerank_perf.measurements.invariance import ABS_TOLERANCE
from pytest_rerank_perf.serving.batching import (
    BatcherClosed,
    BatcherConfig,
    DynamicBatcher,
    cross_encoder_predict,
    token_counter,
)
from pytest_rerank_perf.workloads.workload import Pair, Uniform, WorkloadSpec, build_workload

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with a deadline: a batcher bug that strands a caller fails the test instead of hanging it."""
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def score_of(pair: Pair) -> float:
    """A stand-in model: a fixed score per pair, so any misrouting shows as an exact mismatch."""
    return zlib.crc32(f"{pair[0]}\x00{pair[1]}".encode()) / 2**32


class StandIn:
    """Records every batch it scores; optionally holds each batch until a permit is released, or fails on a
    poisoned query."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[Pair]] = []
        self.permits = threading.Semaphore(0) if hold else None
        self.entered = 0  # batches that reached the model

    def __call__(self, pairs: list[Pair]) -> list[float]:
        self.batches.append(list(pairs))
        self.entered += 1
        if self.permits is not None and not self.permits.acquire(timeout=10):
            raise RuntimeError("stand-in was never released")
        if any(q == "boom" for q, _ in pairs):
            raise ValueError("poisoned query")
        return [score_of(p) for p in pairs]

    @property
    def computed(self) -> list[Pair]:
        return [p for batch in self.batches for p in batch]

    def release(self) -> None:
        assert self.permits is not None
        self.permits.release()

    async def entered_at_least(self, n: int) -> None:
        while self.entered < n:
            await asyncio.sleep(0.001)


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (something another thread does): an ordering, not a timing.
    ``run``'s deadline fails a test whose condition never comes."""
    while not condition():
        await asyncio.sleep(0.001)


def make_pairs(tag: str, n: int, rng: random.Random) -> list[Pair]:
    return [(f"q-{tag}", "w " * rng.randint(1, 60) + f"{tag}-{i}") for i in range(n)]


def expected(pairs: Sequence[Pair]) -> np.ndarray:
    return np.asarray([score_of(p) for p in pairs], dtype=np.float32)


def test_concurrent_callers_each_get_exactly_their_own_scores() -> None:
    """60 callers in six waves; each wave arrives while the batch before it is held in the model, so the queue
    mixes waves and every later batch merges callers: by construction, not by the timing of sleeps."""
    rng = random.Random(7)
    requests = {f"r{i}": make_pairs(f"r{i}", rng.randint(1, 20), rng) for i in range(60)}
    names = list(requests)
    rng.shuffle(names)
    model = StandIn(hold=True)

    async def main() -> dict[str, np.ndarray]:
        async with DynamicBatcher(model, BatcherConfig(max_batch=16, max_wait_s=0.0)) as batcher:
            tasks = {}
            for wave in range(6):
                tasks |= {n: asyncio.ensure_future(batcher.rerank(requests[n])) for n in names[wave::6]}
                if wave:
                    model.release()  # the batch held since the last wave returns; the next one takes both waves'
                await model.entered_at_least(wave + 1)
            assert model.permits is not None
            model.permits.release(len(names))  # the rest runs freely
            got = {n: await t for n, t in tasks.items()}
            assert batcher.pending == 0
            assert max(b.requests for b in batcher.stats.batches) > 1, "no batch merged two callers"
        return got

    got = run(main())
    for name, pairs in requests.items():
        np.testing.assert_array_equal(got[name], expected(pairs), err_msg=name)
    assert all(len(b) <= 16 for b in model.batches)
    assert sorted(model.computed) == sorted(p for ps in requests.values() for p in ps)  # each pair exactly once


def test_scores_through_the_batcher_equal_direct_predict(tiny_model: CrossEncoderReranker) -> None:
    """The older form (docs/serving.md) on the tiny twin. The first batch is held in the model until every other
    request is counted and queued: the batches after it then merge requests by construction."""
    ce = tiny_model.cross_encoder
    spec = WorkloadSpec(Uniform(16, 200), seed=3)
    pool = build_workload(spec, tiny_model.tokenizer, 96).pairs
    rng = random.Random(1)
    requests = [list(rng.sample(pool, rng.randint(1, 12))) for _ in range(12)]
    config = BatcherConfig(max_batch=32, max_wait_s=0.0, max_tokens=32 * 128)
    predict, release, held = cross_encoder_predict(ce), threading.Event(), []

    def first_waits(pairs: list[Pair]) -> Any:
        if not held:
            held.append(len(pairs))
            if not release.wait(timeout=30):
                raise RuntimeError("the first batch was never released")
        return predict(pairs)

    async def main() -> list[np.ndarray]:
        lengths = token_counter(tiny_model.tokenizer, tiny_model.identity.max_length)
        async with DynamicBatcher(first_waits, config, lengths) as batcher:
            tasks = [asyncio.ensure_future(batcher.rerank(r)) for r in requests]
            await until(lambda: bool(held) and batcher.pending + held[0] == sum(map(len, requests)))
            release.set()
            out = await asyncio.gather(*tasks)
            assert max(b.requests for b in batcher.stats.batches) > 1
            assert all(b.padded_tokens <= config.max_tokens or b.pairs == 1 for b in batcher.stats.batches)
        return list(out)

    got = run(main())
    asked = sorted({p for r in requests for p in r})
    direct = dict(zip(asked, ce.predict(asked, batch_size=32, show_progress_bar=False), strict=True))
    for pairs, scores in zip(requests, got, strict=True):
        np.testing.assert_allclose(scores, [direct[p] for p in pairs], rtol=0, atol=ABS_TOLERANCE["fp32"])


def test_cancelled_and_timed_out_requests_leak_nothing() -> None:
    rng = random.Random(2)
    model = StandIn(hold=True)
    in_flight, kept, cancelled, timed_out, after = (make_pairs(t, 5, rng) for t in ("fly", "keep", "cx", "to", "aft"))

    async def main() -> None:
        async with DynamicBatcher(model, BatcherConfig(max_batch=8, max_wait_s=0.0)) as batcher:
            first = asyncio.ensure_future(batcher.rerank(in_flight))
            await model.entered_at_least(1)  # the first batch is now held inside the model
            keep = asyncio.ensure_future(batcher.rerank(kept))
            cx = asyncio.ensure_future(batcher.rerank(cancelled))
            await asyncio.sleep(0)
            assert batcher.pending == 10
            cx.cancel()
            with pytest.raises(TimeoutError, match="timed out"):
                await batcher.rerank(timed_out, timeout=0.01)
            assert batcher.pending == 5  # only `kept` is still queued
            for _ in range(3):  # in_flight, kept, after
                model.release()
            np.testing.assert_array_equal(await first, expected(in_flight))
            np.testing.assert_array_equal(await keep, expected(kept))
            with pytest.raises(asyncio.CancelledError):
                await cx
            np.testing.assert_array_equal(await batcher.rerank(after), expected(after))
            assert batcher.pending == 0

    run(main())
    assert not set(model.computed) & set(cancelled + timed_out), "withdrawn pairs were computed"


def test_a_request_cancelled_in_flight_does_not_disturb_its_batch_mates() -> None:
    rng = random.Random(3)
    model = StandIn(hold=True)
    blocker, mine, neighbour = (make_pairs(t, 4, rng) for t in ("blk", "mine", "nb"))

    async def main() -> None:
        async with DynamicBatcher(model, BatcherConfig(max_batch=8, max_wait_s=0.0)) as batcher:
            first = asyncio.ensure_future(batcher.rerank(blocker))
            await model.entered_at_least(1)
            gone = asyncio.ensure_future(batcher.rerank(mine))
            stays = asyncio.ensure_future(batcher.rerank(neighbour))
            model.release()
            await first
            await model.entered_at_least(2)  # `mine` and `neighbour` are now one batch, held in the model
            gone.cancel()
            await asyncio.sleep(0)
            model.release()
            np.testing.assert_array_equal(await stays, expected(neighbour))
            with pytest.raises(asyncio.CancelledError):
                await gone

    run(main())
    assert model.batches[1] == mine + neighbour  # they really shared the batch that was cut short for one of them


def test_errors_reach_only_the_callers_that_caused_them() -> None:
    rng = random.Random(4)
    good = [make_pairs(f"g{i}", 3, rng) for i in range(4)]
    bad = [("boom", "doc"), *make_pairs("bad", 2, rng)]
    model = StandIn()

    async def main() -> list[np.ndarray | BaseException]:
        async with DynamicBatcher(model, BatcherConfig(max_batch=64, max_wait_s=0.05)) as batcher:
            calls = [batcher.rerank(p) for p in (good[0], good[1], bad, good[2], good[3])]
            out = await asyncio.gather(*calls, return_exceptions=True)
            assert batcher.stats.batches[0].failed
            assert batcher.stats.batches[0].requests == 5
        return list(out)

    out = run(main())
    assert isinstance(out[2], ValueError)
    assert "poisoned" in str(out[2])
    for pairs, scores in zip(good, [out[0], out[1], out[3], out[4]], strict=True):
        assert isinstance(scores, np.ndarray)
        np.testing.assert_array_equal(scores, expected(pairs))


def test_close_drains_every_queued_request_then_refuses_new_ones() -> None:
    rng = random.Random(5)
    requests = [make_pairs(f"d{i}", rng.randint(1, 9), rng) for i in range(40)]
    model = StandIn()

    async def main() -> None:
        batcher = await DynamicBatcher(model, BatcherConfig(max_batch=8, max_wait_s=1.0)).start()
        tasks = [asyncio.ensure_future(batcher.rerank(r)) for r in requests]
        await asyncio.sleep(0)  # all queued; a 1 s window would hold them, close() must not wait for it
        await batcher.close()
        assert all(t.done() for t in tasks)
        for pairs, task in zip(requests, tasks, strict=True):
            np.testing.assert_array_equal(task.result(), expected(pairs))
        with pytest.raises(BatcherClosed, match="closed"):
            await batcher.rerank(requests[0])

    run(main())
    assert len(model.computed) == sum(map(len, requests))


def test_close_without_drain_fails_what_is_queued() -> None:
    rng = random.Random(6)
    model = StandIn(hold=True)
    running, queued = make_pairs("run", 3, rng), make_pairs("q", 3, rng)

    async def main() -> None:
        batcher = await DynamicBatcher(model, BatcherConfig(max_batch=3, max_wait_s=0.0)).start()
        first = asyncio.ensure_future(batcher.rerank(running))
        await model.entered_at_least(1)
        waiting = asyncio.ensure_future(batcher.rerank(queued))
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(batcher.close(drain=False))
        await asyncio.sleep(0)
        model.release()
        await closing
        np.testing.assert_array_equal(await first, expected(running))  # the batch in flight still completes
        with pytest.raises(BatcherClosed):
            await waiting

    run(main())
    assert model.computed == running


def test_inference_runs_off_the_event_loop() -> None:
    """The model, once it has started, waits for a signal that only a coroutine on the loop can send: a model run
    on the loop would deadlock (its wait times out and the test fails instead of hanging)."""
    entered, signal = threading.Event(), threading.Event()

    def predict(pairs: list[Pair]) -> list[float]:
        entered.set()
        if not signal.wait(timeout=10):
            raise RuntimeError("the event loop was blocked while the model ran")
        return [score_of(p) for p in pairs]

    async def main() -> tuple[np.ndarray, str]:
        loop_thread = threading.current_thread().name
        async with DynamicBatcher(predict, BatcherConfig(max_wait_s=0.0)) as batcher:
            task = asyncio.ensure_future(batcher.rerank([("q", "d")]))
            await until(entered.is_set)  # the model is running now, and the loop is still ours
            signal.set()
            return await task, loop_thread

    scores, loop_thread = run(main())
    assert scores.tolist() == pytest.approx([score_of(("q", "d"))])
    assert loop_thread == threading.main_thread().name


def _run_queued(config: BatcherConfig, items: list[tuple[Pair, int]]) -> DynamicBatcher:
    """Queue everything before the collector looks, then drain: batch formation is deterministic. Each pair's
    length is its character count (taken inline, so every request is queued at once): a document of n - 1 chars."""
    items = [((q, "d" * (n - len(q))), n) for (q, _), n in items]
    model = StandIn()

    async def main() -> DynamicBatcher:
        batcher = await DynamicBatcher(model, config).start()
        tasks = [asyncio.ensure_future(batcher.rerank([p])) for p, _ in items]
        await asyncio.sleep(0)
        await batcher.close()
        for (p, _), t in zip(items, tasks, strict=True):
            assert t.result().tolist() == pytest.approx([score_of(p)])
        return batcher

    return run(main())


def test_batches_respect_max_batch_and_the_token_budget() -> None:
    rng = random.Random(8)
    items = [((f"q{i}", f"d{i}"), rng.randint(10, 500)) for i in range(100)]
    stats = _run_queued(BatcherConfig(max_batch=12, max_tokens=2048, max_wait_s=1.0), items).stats
    assert stats.pairs == 100
    assert all(b.pairs <= 12 for b in stats.batches)
    assert all(b.padded_tokens <= 2048 for b in stats.batches)


def test_length_aware_grouping_cuts_padding() -> None:
    rng = random.Random(9)
    items = [((f"q{i}", f"d{i}"), rng.choice([20, 30, 480, 500])) for i in range(64)]
    aware = _run_queued(BatcherConfig(max_batch=8, max_wait_s=1.0), items).stats
    fifo = _run_queued(BatcherConfig(max_batch=8, max_wait_s=1.0, length_aware=False), items).stats
    assert aware.padding_fraction < 0.05 < fifo.padding_fraction


def test_bad_input_and_bad_config_get_clear_errors() -> None:
    async def main() -> None:
        async with DynamicBatcher(StandIn()) as batcher:
            with pytest.raises(TypeError, match=r"rerank: pairs\[1\] is .*pair of str"):
                await batcher.rerank([("q", "d"), ("q", 3)])  # type: ignore[list-item]
            assert (await batcher.rerank([])).shape == (0,)

    run(main())
    with pytest.raises(RerankPerfError, match="max_batch 0"):
        BatcherConfig(max_batch=0)
    with pytest.raises(RerankPerfError, match="max_wait_s"):
        BatcherConfig(max_wait_s=-1)
    with pytest.raises(RerankPerfError, match="max_tokens"):
        BatcherConfig(max_tokens=0)

    async def unstarted() -> None:
        with pytest.raises(BatcherClosed, match="start it"):
            await DynamicBatcher(StandIn()).rerank([("q", "d")])

    run(unstarted())


class CountingTokenizer:
    """The model's tokenizer, counting every pair it encodes (as a text or a text pair)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pairs = 0

    def __call__(self, text: Any, text_pair: Any = None, **kwargs: Any) -> Any:
        self.pairs += len(text) if isinstance(text, list) else 1
        return self.inner(text, text_pair, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_the_batcher_tokenizes_each_request_once_and_the_model_gets_token_ids(
    tiny_model: CrossEncoderReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_rerank_perf.serving.batcher_config import encoded_predict, token_ids

    workload = build_workload(WorkloadSpec(Uniform(20, 120), seed=5), tiny_model.tokenizer, 48)
    requests = [list(workload.pairs[i : i + 6]) for i in range(0, 48, 6)]
    counting = CountingTokenizer(tiny_model.cross_encoder.tokenizer)
    monkeypatch.setattr(type(tiny_model), "tokenizer", property(lambda self: counting))
    given: list[Any] = []

    def predict(encoded: list[Any]) -> Any:
        given.extend(encoded)
        return encoded_predict(tiny_model)(encoded)

    async def main() -> list[np.ndarray]:
        async with DynamicBatcher(predict, BatcherConfig(max_batch=16), prepare=token_ids(tiny_model)) as b:
            return await asyncio.gather(*(b.rerank(r) for r in requests))

    got = run(main())
    assert counting.pairs == len(workload.pairs)  # every pair tokenized exactly once, none a second time
    assert all(isinstance(ids, tuple) and all(isinstance(t, int) for t in ids) for ids in given)
    monkeypatch.undo()
    for request, scores in zip(requests, got, strict=True):
        np.testing.assert_allclose(scores, tiny_model.predict(request, len(request)), atol=ABS_TOLERANCE["fp32"])


def test_tokenization_never_blocks_the_event_loop() -> None:
    """``prepare``, once it has started, waits for a signal that only a coroutine on the loop can send: tokenizing
    on the loop would deadlock (the wait times out and the test fails instead of hanging)."""
    entered, signal = threading.Event(), threading.Event()

    def prepare(pairs: Sequence[Pair]) -> list[tuple[Any, int]]:
        entered.set()
        if not signal.wait(timeout=10):
            raise RuntimeError("the event loop was blocked while a request was tokenized")
        return [(p, len(p[0]) + len(p[1])) for p in pairs]

    async def main() -> list[np.ndarray]:
        async with DynamicBatcher(StandIn(), BatcherConfig(max_batch=8), prepare=prepare) as b:
            tasks = [asyncio.ensure_future(b.rerank([(f"q{i}", "d")])) for i in range(3)]
            await until(entered.is_set)  # a request is being tokenized, and the loop is still ours
            signal.set()
            return await asyncio.gather(*tasks)

    got = run(main())
    assert [g.tolist() for g in got] == [pytest.approx([score_of((f"q{i}", "d"))]) for i in range(3)]


def test_a_batcher_takes_prepare_or_lengths_not_both() -> None:
    with pytest.raises(RerankPerfError, match=r"prepare .* or lengths, not both"):
        DynamicBatcher(StandIn(), lengths=lambda pairs: [1] * len(pairs), prepare=lambda pairs: [])
