"""Per-run facts resolved once and kept on the pytest config: the options, the device, the hardware profile.

Nothing here imports torch or loads a model until something asks for the device, so the plugin costs nothing in
a pytest run that does not use it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..backends.cross_encoder import resolve_model_spec
from ..backends.precision import resolve_dtype
from ..errors import RerankPerfError, UsageError
from ..machine import device as dev
from ..machine.hardware import HardwareProfile, detect
from .options import RerankOptions, parse_options

OPTIONS_KEY = pytest.StashKey[RerankOptions]()
DEVICE_KEY = pytest.StashKey[str]()
PROFILE_KEY = pytest.StashKey[HardwareProfile]()


def configure(config: pytest.Config) -> None:
    """Validate every option once, before anything loads (on the xdist controller too, so a usage error is one
    message before any worker starts)."""
    try:
        config.stash[OPTIONS_KEY] = opts = parse_options(config)
        if opts.processes_auto:  # --rerank-processes auto: how many depends on the device
            config.stash[OPTIONS_KEY] = opts = opts.for_device(session_device(config))
        workers = config.getoption("numprocesses", default=None)
        if isinstance(workers, int) and xdist_worker_index() is None:
            check_one_gpu_per_worker(opts.device, workers)
            if workers > 1 and opts.processes > 1:
                raise UsageError(
                    f"--rerank-processes {opts.processes} with -n {workers}: pooled processes run one after the "
                    "other on one device; drop -n, or use --rerank-processes 1"
                )
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def get_options(config: pytest.Config) -> RerankOptions:
    return config.stash[OPTIONS_KEY]


def under_root(config: pytest.Config, option_value: str) -> Path:
    """A directory option: absolute as given, relative to the rootdir otherwise."""
    path = Path(option_value)
    return path if path.is_absolute() else config.rootpath / path


def xdist_worker_index() -> int | None:
    """N for pytest-xdist worker gwN; None outside xdist (and on the xdist controller)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else None


def xdist_worker_count() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)


def check_one_gpu_per_worker(requested: str, workers: int) -> None:
    """An explicit ``--rerank-device cuda:K`` with several xdist workers would put them all on one GPU."""
    if dev.is_cuda(requested) and requested != "cuda" and workers > 1:
        raise UsageError(
            f"--rerank-device {requested} with {workers} pytest-xdist workers would put all of them on one GPU "
            "and each would slow the others down: use --rerank-device cuda (worker gwN on cuda:N), or -n 1"
        )


def pin_worker_device(requested: str, resolved: str, worker: int | None, gpus: int, workers: int = 1) -> str:
    """Under pytest-xdist, worker gwN measures on cuda:N: one worker per GPU, no GPU shared by two workers.

    An explicit ``--rerank-device cuda:K`` with one worker is that GPU; with several it would put every worker on
    one GPU, each slowing the others down, so it is a usage error.
    """
    if worker is None or not dev.is_cuda(resolved):
        return resolved
    if requested not in ("auto", "cuda"):
        check_one_gpu_per_worker(requested, workers)
        return resolved
    if worker >= gpus:
        raise UsageError(
            f"pytest-xdist worker gw{worker} has no GPU of its own ({gpus} visible): run with -n {gpus}, one worker "
            "per GPU, or restrict the GPUs with CUDA_VISIBLE_DEVICES"
        )
    return f"cuda:{worker}"


def session_device(config: pytest.Config) -> str:
    """The device this process measures on, resolved once (and pinned per xdist worker)."""
    if DEVICE_KEY not in config.stash:
        requested = get_options(config).device
        try:
            device = dev.resolve(requested)
            if dev.is_cuda(device):
                worker, workers = xdist_worker_index(), xdist_worker_count()
                device = pin_worker_device(requested, device, worker, dev.device_count(), workers)
                dev.set_device(device)  # stray allocations land on this worker's GPU too
        except RerankPerfError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[DEVICE_KEY] = device
    return config.stash[DEVICE_KEY]


def session_profile(config: pytest.Config) -> HardwareProfile:
    """The hardware profile, detected once per session: header, fixtures, JSON and summary all show the same one."""
    if PROFILE_KEY not in config.stash:
        device = session_device(config)
        try:
            if device == "cpu":  # before detection: the thread count is part of a CPU profile id
                import torch

                torch.set_num_threads(get_options(config).cpu_threads)
            config.stash[PROFILE_KEY] = detect(device)
        except RerankPerfError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[PROFILE_KEY]


# GPU facts of the moment the profile was taken, not of the machine (a baseline's fingerprint holds the maximum clock)
_MOMENTARY = ("sm_clock_mhz", "mem_clock_mhz", "throttle_reasons")


def machine_facts(config: pytest.Config) -> dict[str, object]:
    """What rerank-perf adds to pytest-benchmark's machine_info: only what is known before the model loads and holds
    from run to run on one machine. pytest-benchmark computes the machine_info it compares at start-up, before any
    test, so a model's content key (known once it loads) or the clocks of the moment would differ on every compare."""
    try:
        profile = session_profile(config)
        opts, device = get_options(config), session_device(config)
        model = f"{resolve_model_spec(opts.model, device)} {resolve_dtype(opts.dtype, device)} L{opts.max_length}"
    except (pytest.UsageError, RerankPerfError) as exc:
        return {"rerank_hardware": {"error": str(exc)}}
    hardware = profile.to_dict()
    if hardware.get("gpu"):
        hardware["gpu"] = {k: v for k, v in hardware["gpu"].items() if k not in _MOMENTARY}
    return {"rerank_profile_id": profile.profile_id, "rerank_model": model, "rerank_hardware": hardware}


def describe_run(config: pytest.Config) -> list[str]:
    """Header lines for a benchmark run: what will be measured, and a loud label on the CPU fallback."""
    opts = get_options(config)
    device = session_device(config)
    try:
        dtype = resolve_dtype(opts.dtype, device)
    except RerankPerfError as exc:
        raise pytest.UsageError(str(exc)) from None
    profile = session_profile(config)
    model = resolve_model_spec(opts.model, device)
    lines = [
        f"rerank-perf: profile {profile.summary()}",
        f"rerank-perf: model {model} on {device}, {dtype}, max_length {opts.max_length}",
    ]
    lines += [f"rerank-perf: note: {note}" for note in profile.notes]
    if not dev.is_cuda(device):
        lines.append(
            "rerank-perf: *** CPU FALLBACK: no GPU here. Measuring on the CPU"
            + (" with the TINY TWIN (2 layers x 64 hidden)" if model == "twin-tiny" else "")
            + ". These figures show the harness works; they say nothing about GPU performance. ***"
        )
    return lines
