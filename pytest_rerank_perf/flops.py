"""FLOPs of a cross-encoder forward and the GPU's dense peak, for model FLOPs utilisation (MFU).

Per token and layer a BERT-style encoder costs 2*(4*d*d + 2*d*ffn) FLOPs in its projections and FFN, plus
4*n*d in attention (QK^T and AV) for a padded sequence of n tokens. For XLM-R large (d=1024, ffn=4096, 24 layers)
that is 24*24*d*d = 0.604 GFLOP per token plus 98,304*n. Embeddings and the classification head are negligible.
MFU counts padded tokens: that is the work the GPU does, whether or not a token is padding.
"""

from __future__ import annotations

from typing import Any

# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's data sheets: (fp16/bf16, fp32 without TF32).
_PEAKS_TFLOPS: tuple[tuple[str, float, float], ...] = (
    ("h200", 989.4, 66.9),
    ("h100 nvl", 835.5, 60.0),
    ("h100 pcie", 756.5, 51.2),
    ("h100", 989.4, 66.9),  # SXM (HBM3)
    ("gh200", 989.4, 66.9),
    ("a100", 312.0, 19.5),
    ("l40s", 362.1, 91.6),
    ("l4", 121.0, 30.3),
    ("a10g", 125.0, 31.2),
    ("a10", 125.0, 31.2),
    ("rtx 4090", 165.2, 82.6),
    ("t4", 65.0, 8.1),
    ("v100", 125.0, 15.7),
)


def flops_per_batch(config: Any, batch: int, seq_len: int) -> float:
    d, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token_layer = 2 * (4 * d * d + 2 * d * ffn) + 4 * seq_len * d
    return float(batch * seq_len * layers * per_token_layer)


def peak_flops(gpu_name: str | None, dtype: str) -> float | None:
    """Dense peak FLOP/s of a known GPU in ``dtype``, or None (CPU, unknown card)."""
    if not gpu_name:
        return None
    name = gpu_name.lower()
    for key, half, single in _PEAKS_TFLOPS:
        if key in name:
            return (single if dtype == "fp32" else half) * 1e12
    return None
