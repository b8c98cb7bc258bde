"""``-p pytest_rerank_perf.fakegpu.clock``: a virtual clock for a pytest run (and the fresh processes it pools).

The host's speed must not reach a test's verdict: on a shared 2-core machine a re-run is sometimes 70% slower. With
this plugin every timing site of a cell reads a virtual clock (``device.use_clock``) that only moves when the model
under test runs a forward: by ``base_s + per_token_s x padded tokens`` seconds, times seeded lognormal noise per
forward (sigma ``noise``) and a per-process factor (sigma ``drift``, seeded by the pooled process's index), so the
statistics see a realistic spread that is the same on every machine. The slowdown injector stretches that virtual
forward (``device.pause``), as a slower kernel would. The fingerprint's GEMM does not run a forward: the virtual
machine's fingerprint is fixed.

Settings as JSON in ``RERANK_PERF_VIRTUAL_CLOCK`` (the pooled processes inherit it), the fields of ``ForwardCost``,
e.g. ``{"noise": 0.02, "drift": 0.03, "seed": 1}``. Real time still passes for what is not a cell's timing (the load
benchmark, the harness overhead).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..backends import LOADERS
from ..backends.standin import VirtualClock
from ..machine import device as dev
from ..machine import fingerprint

ENV = "RERANK_PERF_VIRTUAL_CLOCK"
FINGERPRINT = fingerprint.Fingerprint("fp32 512x512x512 on a virtual clock", 1.0e11, 0.01)
_KEY = pytest.StashKey[tuple[dict[str, Any], Any]]()


@dataclass(frozen=True)
class ForwardCost:
    # a few milliseconds a forward, as a GPU takes: the built-in scenarios' SLOs hold for the tests' small cells
    base_s: float = 0.002  # per forward (kernel launches, the weights read once)
    per_token_s: float = 2e-6  # per padded token of the batch
    noise: float = 0.02  # sigma of each forward's lognormal factor
    drift: float = 0.0  # sigma of each process's lognormal factor
    seed: int = 0


class VirtualForwards:
    """Advances ``clock`` by each forward's cost. ``stream`` seeds the noise: (process index, recording), so a
    re-run does not replay the recording's draws, and each pooled process drifts its own way."""

    def __init__(self, cost: ForwardCost, clock: VirtualClock, process: int = 0, recording: bool = False) -> None:
        self.cost = cost
        self.clock = clock
        self.factor = float(np.random.default_rng([cost.seed, process]).lognormal(0.0, cost.drift))
        self.rng = np.random.default_rng([cost.seed, process, int(recording)])

    def seconds(self, batch: int, tokens: int) -> float:
        c = self.cost
        return (c.base_s + c.per_token_s * batch * tokens) * self.factor * float(self.rng.lognormal(0.0, c.noise))

    def _post(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], _output: Any) -> None:
        batch, tokens = (kwargs["input_ids"] if "input_ids" in kwargs else args[0]).shape
        self.clock.advance(self.seconds(int(batch), int(tokens)))

    def attach(self, model: Any) -> Any:
        """Hook the module every forward of ``model`` runs through, predict's and its variants' alike: the
        transformer's encoder (sentence-transformers calls its model's ``forward`` method directly, past the
        model's own hooks). Its post-hook runs inside the batch module's forward, before the slowdown injector's
        and the trackers' hooks end it: they see the advanced time."""
        inner = getattr(getattr(model, "cross_encoder", None), "model", None)
        module = getattr(inner, "base_model", None) or model.batch_module()
        module.register_forward_hook(self._post, with_kwargs=True)
        return model


def process_index(config: pytest.Config) -> int:
    """0 for the run itself; i for the pooled (or spread) process writing its report to ``.../process-i``."""
    report_dir = Path(str(config.getoption("rerank_report_dir", None) or ""))
    found = re.fullmatch(r"process-(\d+)", report_dir.name)
    return int(found.group(1)) if found else 0


def _advancing(forwards: VirtualForwards, load: Any) -> Any:
    def load_on_virtual_clock(*args: Any, **kwargs: Any) -> Any:
        return forwards.attach(load(*args, **kwargs))

    return load_on_virtual_clock


def pytest_configure(config: pytest.Config) -> None:
    cost = ForwardCost(**json.loads(os.environ.get(ENV) or "{}"))
    clock = VirtualClock(1000.0)
    recording = bool(config.getoption("rerank_save_baseline", False))
    forwards = VirtualForwards(cost, clock, process_index(config), recording)
    config.stash[_KEY] = (dict(LOADERS), fingerprint.measure)
    for name, load in list(LOADERS.items()):  # a fake GPU's loaders too: its plugin configures first
        LOADERS[name] = _advancing(forwards, load)
    fingerprint.measure = lambda device, gpu=None: FINGERPRINT
    dev.use_clock(clock)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _KEY not in config.stash:
        return
    loaders, measure = config.stash[_KEY]
    dev.use_clock(None)
    LOADERS.update(loaders)
    fingerprint.measure = measure
