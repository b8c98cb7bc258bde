"""A dynamic batcher: an asyncio front end that merges concurrent rerank requests into model batches.

Callers ``await batcher.rerank(pairs)``. Their pairs join one queue; a collector task closes a batch when it holds
``max_batch`` pairs, when its padded tokens would pass ``max_tokens``, or when the oldest queued pair has waited
``max_wait_s``, and runs the model in a single worker thread so the event loop never blocks on inference.

Requests are tokenized once, off the event loop (``batch_prep``; ``prepare=token_ids(model)``): the lengths group
the batches and ``predict`` receives the token ids (``encoded_predict``), so nothing is tokenized twice. The
tokenizer thread and the worker run at the same time: the adapters (``batcher_config``) never let them use one
tokenizer or model at once.

What it guarantees, and ``tests/test_batching.py`` proves with concurrent callers:

- every caller gets exactly its own scores, in its own order;
- a cancelled or timed-out request leaves the queue at once, its pairs still queued are never computed, and its
  pairs already in flight are dropped when they return: nothing leaks into another caller's result;
- when a batch fails, only the requests that caused it fail: a failed batch that mixes requests is re-run one
  request at a time, so a bad request cannot take its neighbours down with it;
- ``close()`` stops new requests and drains the queue (or, with ``drain=False``, fails what is queued with
  ``BatcherClosed``), then stops the worker thread.

Batches are length-aware: the oldest queued pair anchors each batch (so nothing starves) and the rest of the batch
is filled with the queued pairs closest to it in token length, which cuts padding when long and short passages mix.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from ..errors import RerankPerfError
from ..workloads.pairs import Pair, check_pairs
from .batch_prep import Intake, QueuedPair, Request, by_lengths
from .batcher_config import (
    BatcherConfig,
    BatcherStats,
    BatchRecord,
    LengthFn,
    PredictFn,
    cross_encoder_predict,
    token_counter,
)

__all__ = [
    "BatcherClosed",
    "BatcherConfig",
    "DynamicBatcher",
    "cross_encoder_predict",
    "token_counter",
]


class BatcherClosed(RerankPerfError):
    """The batcher is closed (or closing) and takes no new requests."""


class DynamicBatcher:
    """``async with DynamicBatcher(predict, config, prepare=token_ids(model)) as b: scores = await b.rerank(pairs)``.

    ``predict`` scores one batch of payloads and runs in the batcher's own worker thread. ``prepare`` turns a
    request's pairs into (payload, token length) once, in a tokenizer thread; ``lengths`` (token lengths of pairs,
    the payloads then being the pairs; ``token_counter``) is the older form. Neither given: pairs, with character
    lengths. ``prepare``/``lengths`` and ``predict`` run concurrently: they must not share a tokenizer or model
    unguarded (the adapters in ``batcher_config`` do not).
    """

    def __init__(
        self,
        predict: PredictFn,
        config: BatcherConfig | None = None,
        lengths: LengthFn | None = None,
        prepare: Callable[[Sequence[Pair]], Sequence[tuple[object, int]]] | None = None,
    ) -> None:
        if lengths is not None and prepare is not None:
            raise RerankPerfError("give the batcher prepare (payloads and lengths) or lengths, not both")
        self.predict = predict
        self.config = config or BatcherConfig()
        self._intake = Intake(prepare or (by_lengths(lengths) if lengths else None))
        self.stats = BatcherStats()
        self._queue: list[QueuedPair] = []
        self._seq = itertools.count()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._drain = True
        self._preparing = 0  # requests accepted and still being tokenized: a draining close() waits for them

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> DynamicBatcher:
        if self._task is not None:
            raise RerankPerfError("the batcher is already started")
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank-batcher")
        self._intake.start()
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="rerank-batcher")
        return self

    async def __aenter__(self) -> DynamicBatcher:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, drain: bool = True) -> None:
        """Stop taking requests; finish what is queued (``drain``) or fail it with ``BatcherClosed``."""
        self._closing, self._drain = True, drain
        if not drain:
            self._fail_queued(BatcherClosed("the batcher was closed before this request ran"))
        if self._wakeup is not None:
            self._wakeup.set()
        try:
            if self._task is not None:
                await self._task  # the batch in flight always completes: its thread cannot be interrupted
        finally:
            self._intake.shutdown()
            if self._executor is not None:
                self._executor.shutdown(wait=True)

    @property
    def pending(self) -> int:
        """Pairs queued and not yet sent to the model."""
        return len(self._queue)

    # --- the caller's side --------------------------------------------------------------------------------------

    async def rerank(self, pairs: Sequence[Pair], timeout: float | None = None) -> np.ndarray:
        """Scores for ``pairs``, in their order. Raises ``TimeoutError`` after ``timeout`` seconds; the request is
        then withdrawn exactly as if the caller had been cancelled."""
        if self._closing or self._task is None:
            raise BatcherClosed("the batcher is closed; start it (or use `async with`) before calling rerank")
        checked = check_pairs(pairs, "rerank")
        if not checked:
            return np.empty(0, dtype=np.float32)
        loop, wakeup = asyncio.get_running_loop(), self._wakeup
        assert wakeup is not None
        self._preparing += 1
        deadline = None if timeout is None else loop.time() + timeout  # the timeout covers tokenization too
        try:
            prepared = await asyncio.wait_for(self._intake(checked), timeout)  # tokenized once, in its thread
        except asyncio.TimeoutError:
            raise TimeoutError(f"rerank of {len(checked)} pairs timed out after {timeout} s") from None
        finally:
            self._preparing -= 1
            wakeup.set()  # a closing collector waits for requests being tokenized
        if self._closing and not self._drain:
            raise BatcherClosed("the batcher was closed before this request ran")
        future: asyncio.Future[np.ndarray] = loop.create_future()
        request = Request(future, np.empty(len(checked), dtype=np.float32), len(checked))
        now = loop.time()
        self._queue += [
            QueuedPair(next(self._seq), request, i, payload, tokens, now)
            for i, (payload, tokens) in enumerate(prepared)
        ]
        future.add_done_callback(self._withdraw)
        wakeup.set()
        try:
            return await asyncio.wait_for(future, None if deadline is None else max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:  # an alias of TimeoutError from Python 3.11 on; raised as the builtin
            raise TimeoutError(f"rerank of {len(checked)} pairs timed out after {timeout} s") from None

    def _withdraw(self, future: asyncio.Future[np.ndarray]) -> None:
        """A finished request's pairs leave the queue: cancelled or failed ones must not be computed."""
        if any(item.request.future is future for item in self._queue):
            self._queue = [item for item in self._queue if item.request.future is not future]

    # --- the collector ------------------------------------------------------------------------------------------

    def _window_full(self) -> bool:
        cfg = self.config
        if len(self._queue) >= cfg.max_batch:
            return True
        if cfg.max_tokens is None:
            return False
        return len(self._queue) * max(item.tokens for item in self._queue) >= cfg.max_tokens

    async def _collect(self) -> None:
        try:
            await self._collect_batches()
        except BaseException as exc:  # a bug here must not strand callers: fail them all, refuse new ones
            self._closing, self._drain = True, False
            self._fail_queued(
                exc if isinstance(exc, Exception) else BatcherClosed("the batcher's collector was cancelled")
            )
            raise

    def _fail_queued(self, exc: Exception) -> None:
        for item in self._queue:
            self._fail(item.request, exc)
        self._queue.clear()

    async def _collect_batches(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closing and not self._preparing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Wait for company until the batch is full or its oldest pair has waited max_wait_s (never when closing).
            while self._queue and not self._closing and not self._window_full():
                left = self._queue[0].enqueued + self.config.max_wait_s - loop.time()
                if left <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), left)
                except asyncio.TimeoutError:
                    break
            if self._queue:
                await self._execute(self._take_batch(), loop.time())

    def _take_batch(self) -> list[QueuedPair]:
        cfg = self.config
        anchor = self._queue[0]  # the oldest: every pair is an anchor eventually, so none starves
        rest = self._queue[1:]
        if cfg.length_aware:
            rest = sorted(rest, key=lambda it: (abs(it.tokens - anchor.tokens), it.seq))
        batch, longest = [anchor], anchor.tokens
        for item in rest:
            if len(batch) >= cfg.max_batch:
                break
            grown = max(longest, item.tokens)
            if cfg.max_tokens is not None and (len(batch) + 1) * grown > cfg.max_tokens:
                continue
            batch.append(item)
            longest = grown
        taken = {id(it) for it in batch}
        self._queue = [it for it in self._queue if id(it) not in taken]
        return sorted(batch, key=lambda it: it.seq)

    async def _run(self, payloads: list[object]) -> np.ndarray:
        assert self._executor is not None
        out = await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, payloads)
        scores = np.asarray(out, dtype=np.float32).reshape(-1)
        if len(scores) != len(payloads):
            raise RerankPerfError(f"predict returned {len(scores)} scores for {len(payloads)} pairs")
        return scores

    async def _execute(self, batch: list[QueuedPair], now: float) -> None:
        requests = {id(it.request): it.request for it in batch}
        longest = max(it.tokens for it in batch)
        record = BatchRecord(
            len(batch), len(requests), sum(it.tokens for it in batch), len(batch) * longest, now - batch[0].enqueued
        )
        try:
            scores = await self._run([it.payload for it in batch])
        except Exception as exc:
            self.stats.batches.append(replace(record, failed=True))
            await self._isolate(batch, requests, exc)
            return
        self.stats.batches.append(record)
        self._deliver(batch, scores)

    async def _isolate(self, batch: list[QueuedPair], requests: dict[int, Request], exc: Exception) -> None:
        """A failed batch: the error goes only to the requests that cause it on their own."""
        if len(requests) == 1:
            self._fail(next(iter(requests.values())), exc)
            return
        for key in requests:
            own = [it for it in batch if id(it.request) == key and not it.request.future.done()]
            if not own:
                continue
            try:
                scores = await self._run([it.payload for it in own])
            except Exception as own_exc:
                self._fail(own[0].request, own_exc)
                continue
            self._deliver(own, scores)

    @staticmethod
    def _fail(request: Request, exc: Exception) -> None:
        if not request.future.done():
            request.future.set_exception(exc)  # its queued pairs leave through the done callback

    @staticmethod
    def _deliver(batch: list[QueuedPair], scores: np.ndarray) -> None:
        for item, score in zip(batch, scores, strict=True):
            request = item.request
            if request.future.done():  # cancelled, timed out or failed while in flight: drop, never misroute
                continue
            request.scores[item.index] = score
            request.remaining -= 1
            if request.remaining == 0:
                request.future.set_result(request.scores)
