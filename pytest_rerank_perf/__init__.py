"""pytest-rerank-perf: guards the inference performance of the bge-reranker-v2-m3 cross-encoder."""

from .errors import DeviceError, ModelNotFoundError, RerankPerfError, UsageError, WorkloadError

__version__ = "0.1.0"

__all__ = [
    "DeviceError",
    "ModelNotFoundError",
    "RerankPerfError",
    "UsageError",
    "WorkloadError",
    "__version__",
]
