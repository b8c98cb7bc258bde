"""The pytest plugin: options, session fixtures and the run description.

Loaded through the ``pytest11`` entry point (or ``-p pytest_rerank_perf.plugin`` where it is not installed).
The plugin is active in every pytest run of an environment that has it installed, so nothing here imports torch
or loads a model until a test asks for a fixture that needs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .errors import RerankPerfError, UsageError
from .hardware import HardwareProfile, detect
from .model import LoadedModel, load_model, resolve_device, resolve_dtype, resolve_model_spec
from .options import RerankOptions, add_options, parse_options

OPTIONS_KEY = pytest.StashKey[RerankOptions]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[OPTIONS_KEY] = parse_options(config)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def get_options(config: pytest.Config) -> RerankOptions:
    return config.stash[OPTIONS_KEY]


def describe_run(config: pytest.Config) -> list[str]:
    """Header lines for a benchmark run: what will be measured, and a loud label on the CPU fallback."""
    opts = get_options(config)
    try:
        device = resolve_device(opts.device)
        dtype = resolve_dtype(opts.dtype, device)
    except RerankPerfError as exc:
        raise pytest.UsageError(str(exc)) from None
    profile = detect(device)
    model = resolve_model_spec(opts.model, device)
    lines = [
        f"rerank-perf: profile {profile.summary()}",
        f"rerank-perf: model {model} on {device}, {dtype}, max_length {opts.max_length}",
    ]
    lines += [f"rerank-perf: note: {note}" for note in profile.notes]
    if not device.startswith("cuda"):
        lines.append(
            "rerank-perf: *** CPU FALLBACK: no GPU here. Measuring on the CPU"
            + (" with the TINY TWIN (2 layers x 64 hidden)" if model == "twin-tiny" else "")
            + ". These figures show the harness works; they say nothing about GPU performance. ***"
        )
    return lines


@pytest.fixture(scope="session")
def rerank_options(pytestconfig: pytest.Config) -> RerankOptions:
    return get_options(pytestconfig)


@pytest.fixture(scope="session")
def rerank_hardware(rerank_options: RerankOptions) -> HardwareProfile:
    try:
        return detect(resolve_device(rerank_options.device))
    except RerankPerfError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rerank_model(rerank_options: RerankOptions) -> Iterator[LoadedModel]:
    """The model under test, loaded once per session in the requested precision."""
    try:
        loaded = load_model(
            rerank_options.model, rerank_options.device, rerank_options.dtype, rerank_options.max_length
        )
    except RerankPerfError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield loaded
    del loaded
