"""Threads that share a tokenizer or a model never use it at once: forced interleavings, not luck.

A fast tokenizer keeps its padding and truncation on the shared Rust object: each call sets them
(``set_truncation_and_padding``), then encodes with whatever is set by then. The tests patch that method, on the
class so that copies get it too, to wait after setting until the other thread has set its own: two threads that
share one tokenizer then always encode with one set of settings, and one of them gets the other's (``predict``
unpadded rows, the counter padded lengths). Threads that take turns, or use tokenizers of their own, pass; a turn
taken costs one wait's timeout at most.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pytest_rerank_perf.backends import CrossEncoderReranker
from pytest_rerank_perf.backends.variants import build_variant
from pytest_rerank_perf.errors import RerankPerfError
from pytest_rerank_perf.measurements.invariance import ABS_TOLERANCE
from pytest_rerank_perf.serving.batcher_config import token_ids
from pytest_rerank_perf.serving.batching import BatcherConfig, DynamicBatcher, cross_encoder_predict, token_counter
from pytest_rerank_perf.workloads.pairs import encoded_lengths
from pytest_rerank_perf.workloads.workload import Pair, Uniform, WorkloadSpec, build_workload

WAIT_S = 0.5  # how long a thread waits for the other at a meeting point: far above a thread switch
ATOL = ABS_TOLERANCE["fp32"]


class Rendezvous:
    """Two threads meet here: each waits for the other (up to ``WAIT_S``), so what both did before it happens
    before what either does after it. A thread with no partner in time goes on; after that every call passes at
    once, unless ``again`` (then the next two meet). ``skip``: the first calls pass without waiting."""

    def __init__(self, again: bool = False, skip: int = 0) -> None:
        self.barrier = threading.Barrier(2, timeout=WAIT_S)
        self.again = again
        self.skip = skip
        self.met = 0

    def __call__(self) -> None:
        if self.skip > 0:
            self.skip -= 1
            return
        try:
            if self.barrier.wait() == 0:
                self.met += 1
        except threading.BrokenBarrierError:
            if self.again:
                self.barrier.reset()


@pytest.fixture
def interleaved(tiny_model: CrossEncoderReranker, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Rendezvous]:
    """``interleaved(...)`` makes every tokenizer call of the tiny model's tokenizer class (copies included) meet
    the other thread's between setting its padding and truncation and encoding."""
    cls = type(tiny_model.tokenizer)
    original = cls.set_truncation_and_padding

    def install(again: bool = False, skip: int = 0) -> Rendezvous:
        meet = Rendezvous(again, skip)

        def set_then_meet(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            meet()

        monkeypatch.setattr(cls, "set_truncation_and_padding", set_then_meet)
        return meet

    return install


def varied(tiny_model: CrossEncoderReranker, n: int, seed: int) -> list[Pair]:
    """Pairs of different token lengths: padded and unpadded rows differ, and so do padded and true counts."""
    pairs = list(build_workload(WorkloadSpec(Uniform(16, 200), seed=seed), tiny_model.tokenizer, n).pairs)
    assert len(set(encoded_lengths(tiny_model.tokenizer, pairs))) > 1
    return pairs


def in_threads(**calls: Callable[[], Any]) -> dict[str, Any]:
    """Each call in a thread of its own (named after it), started together; results by name. An exception raised
    in one is raised here."""
    out: dict[str, Any] = {}

    def run(name: str, call: Callable[[], Any]) -> None:
        try:
            out[name] = call()
        except Exception as exc:
            out[name] = exc

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a thread never finished"
    for result in out.values():
        if isinstance(result, Exception):
            raise result
    return out


def test_counting_tokens_while_predict_tokenizes_shares_no_tokenizer(
    tiny_model: CrossEncoderReranker, interleaved: Callable[..., Rendezvous]
) -> None:
    """The older form's two halves, in two threads: ``token_counter`` and ``cross_encoder_predict`` on one model."""
    ce = tiny_model.cross_encoder
    pairs = varied(tiny_model, 8, seed=11)
    truth = encoded_lengths(tiny_model.tokenizer, pairs)
    direct = ce.predict(pairs, batch_size=len(pairs), show_progress_bar=False)
    count, predict = token_counter(tiny_model.tokenizer, 512), cross_encoder_predict(ce)
    meet = interleaved()

    got = in_threads(count=lambda: count(pairs), predict=lambda: predict(pairs))
    assert got["count"] == truth
    np.testing.assert_allclose(got["predict"], direct, rtol=0, atol=ATOL)
    assert meet.met == 1, "counting waited for predict: it should count with a tokenizer of its own"


@pytest.mark.parametrize(
    ("variant", "caller"),
    [("predict", "model.predict"), ("token-sorted", "model.predict"), ("predict", "cross_encoder_predict")],
)
def test_token_ids_while_a_caller_runs_predict_on_the_same_model(
    tiny_model: CrossEncoderReranker, interleaved: Callable[..., Rendezvous], variant: str, caller: str
) -> None:
    """The recommended form's tokenizer thread (``token_ids``) while someone predicts on the same model: through
    the backend, or through the older form's adapter."""
    model = build_variant(tiny_model, variant)
    pairs = varied(tiny_model, 8, seed=12)
    truth = model.encode(pairs)
    direct = tiny_model.predict(pairs, len(pairs))
    prepare = token_ids(model)
    if caller == "model.predict":
        predict: Callable[[], Any] = lambda: tiny_model.predict(pairs, len(pairs))  # noqa: E731
    else:
        predict = lambda: cross_encoder_predict(tiny_model.cross_encoder)(pairs)  # noqa: E731
    interleaved()

    got = in_threads(prepare=lambda: prepare(pairs), predict=predict)
    assert [ids for ids, _ in got["prepare"]] == truth
    np.testing.assert_allclose(got["predict"], direct, rtol=0, atol=ATOL)


@pytest.mark.parametrize("other", ["predict", "token-sorted"])
def test_a_variants_attention_kernel_never_reaches_a_call_on_the_shared_model(
    tiny_model: CrossEncoderReranker, other: str
) -> None:
    """``attn=eager`` switches the shared model's kernel for its call; another reranker on the same weights, called
    meanwhile from another thread, must still run on the kernel the model was loaded with."""
    model: Any = tiny_model.cross_encoder.model
    loaded = model.config._attn_implementation
    eager, reference = build_variant(tiny_model, "attn=eager"), build_variant(tiny_model, other)
    assert loaded != "eager"
    encoded = tiny_model.encode(varied(tiny_model, 4, seed=13))
    meet, seen = Rendezvous(), []
    switch = model.set_attn_implementation

    def switch_meeting(kernel: str) -> None:
        if kernel == "eager":  # the variant switches, then the reference looks
            switch(kernel)
            meet()
        else:  # the reference has looked: the variant switches back
            meet()
            switch(kernel)

    def look(*_: Any) -> None:
        if threading.current_thread().name == "reference":
            meet()
            seen.append(model.config._attn_implementation)
            meet()

    model.set_attn_implementation = switch_meeting
    hook = model.base_model.register_forward_pre_hook(look)  # ST calls the top model's forward directly
    try:
        in_threads(
            variant=lambda: eager.predict_encoded(encoded, len(encoded)),
            reference=lambda: reference.predict_encoded(encoded, len(encoded)),
        )
    finally:
        hook.remove()
        del model.set_attn_implementation
    assert seen == [loaded]
    assert model.config._attn_implementation == loaded


def test_the_older_form_under_concurrent_requests(
    tiny_model: CrossEncoderReranker, interleaved: Callable[..., Rendezvous]
) -> None:
    """``DynamicBatcher(cross_encoder_predict(ce), config, token_counter(ce.tokenizer, 512))`` as docs/serving.md shows
    it: the tokenizer thread counts the next request while the worker predicts the last one."""
    ce = tiny_model.cross_encoder
    requests = [varied(tiny_model, 4, seed=20 + i) for i in range(4)]
    truth = sum(sum(encoded_lengths(tiny_model.tokenizer, r)) for r in requests)
    direct = [ce.predict(r, batch_size=len(r), show_progress_bar=False) for r in requests]
    # The first call counts the first request: nothing is being predicted yet, so it has nobody to meet.
    meet = interleaved(again=True, skip=1)

    async def main() -> tuple[list[Any], DynamicBatcher]:
        config = BatcherConfig(max_batch=8, max_wait_s=0.0)
        async with DynamicBatcher(cross_encoder_predict(ce), config, token_counter(ce.tokenizer, 512)) as batcher:
            out = await asyncio.gather(*(batcher.rerank(r) for r in requests), return_exceptions=True)
        return out, batcher

    out, batcher = asyncio.run(asyncio.wait_for(main(), timeout=60))
    errors = [o for o in out if isinstance(o, BaseException)]
    if errors:
        raise errors[0]
    for scores, want in zip(out, direct, strict=True):
        np.testing.assert_allclose(scores, want, rtol=0, atol=ATOL)
    assert not any(b.failed for b in batcher.stats.batches)
    assert sum(b.real_tokens for b in batcher.stats.batches) == truth  # counted as the model sees them
    assert meet.met >= 1, "the tokenizer thread never counted while the worker predicted"


def test_a_tokenizer_that_cannot_be_copied_is_refused_with_the_safe_form_named() -> None:
    class Uncopyable:
        def __deepcopy__(self, memo: Any) -> Any:
            raise TypeError("cannot pickle 'Tokenizer' object")

    with pytest.raises(RerankPerfError, match=r"cannot be copied .*Use prepare=token_ids\(model\) instead"):
        token_counter(Uncopyable(), 512)


def test_exclusive_gives_one_reentrant_lock_per_object_for_its_lifetime() -> None:
    from pytest_rerank_perf.backends.guards import _locks, exclusive

    class Thing:
        pass

    a, b = Thing(), Thing()
    assert exclusive(a) is exclusive(a)
    assert exclusive(a) is not exclusive(b)
    with exclusive(a), exclusive(a):  # re-entrant: a call holding it may call another that takes it
        pass
    key = id(a)
    del a  # no cycle: collected at once
    assert key not in _locks  # gone with its object: a later object with the same id gets a fresh lock
    pair = (1, 2)  # not weakly referenceable: still one lock, no error
    assert exclusive(pair) is exclusive(pair)
