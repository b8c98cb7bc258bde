"""pytest-rerank-perf: guards the inference performance of the bge-reranker-v2-m3 cross-encoder.

What a user reaches for is importable from here; the modules hold the rest (docs/architecture.md).
"""

from .backends import CrossEncoderReranker, Reranker, load_model
from .errors import DeviceError, ModelNotFoundError, RerankPerfError, UsageError, WorkloadError
from .measurements.invariance import InvarianceReport, check_invariance
from .serving.batching import BatcherConfig, DynamicBatcher
from .serving.safe_predict import SafePrediction, safe_predict
from .workloads.datafile import load_jsonl_pairs
from .workloads.lengths import Fixed, LongTail, Uniform, parse_length_dist
from .workloads.workload import Workload, WorkloadSpec, build_workload, workload_from_pairs

__version__ = "0.1.0"

__all__ = [
    "BatcherConfig",
    "CrossEncoderReranker",
    "DeviceError",
    "DynamicBatcher",
    "Fixed",
    "InvarianceReport",
    "LongTail",
    "ModelNotFoundError",
    "RerankPerfError",
    "Reranker",
    "SafePrediction",
    "Uniform",
    "UsageError",
    "Workload",
    "WorkloadError",
    "WorkloadSpec",
    "__version__",
    "build_workload",
    "check_invariance",
    "load_jsonl_pairs",
    "load_model",
    "parse_length_dist",
    "safe_predict",
    "workload_from_pairs",
]
