"""Where a matrix cell's pairs come from: the seeded token-length recipe, or the user's data file; and its profile."""

from __future__ import annotations

from collections.abc import MutableMapping

from ..backends import Reranker
from ..backends.model_config import usable_positions
from ..measurements.data_profile import DataProfile
from ..workloads.file_workload import file_workload
from ..workloads.pairs import encoded_lengths
from ..workloads.workload import Workload, build_workload
from .options import RerankOptions


def build_cell_workload(
    options: RerankOptions, model: Reranker, num_pairs: int, lengths: MutableMapping[str, list[int]]
) -> tuple[Workload, DataProfile]:
    """The workload of a ``num_pairs`` cell and the profile of its source under the model's tokenizer.
    ``lengths`` keeps a data file's encoded lengths between cells (tokenised once per session)."""
    max_length = model.identity.max_length
    to_dict = getattr(model.flop_config(), "to_dict", None)  # a transformers config; None for other backends
    limit = usable_positions(to_dict()) if to_dict else None
    data = options.data
    if data is None:
        spec = options.workload_spec()
        workload = build_workload(spec, model.tokenizer, num_pairs)
        sizes = [len(workload)]  # one query reranks every document: one request
        profile = DataProfile.of(spec.id, "seeded", "seeded", workload.token_lengths, sizes, max_length, limit)
        return workload, profile
    if data.id not in lengths:
        lengths[data.id] = encoded_lengths(model.tokenizer, data.pairs)
    every = lengths[data.id]
    profile = DataProfile.of(data.id, str(data.path), data.shape, every, data.request_sizes, max_length, limit)
    return file_workload(data, every, num_pairs), profile
