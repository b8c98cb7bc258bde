"""FLOPs of a cross-encoder forward and the GPU's dense peak, for model FLOPs utilisation (MFU).

Per token and layer a BERT-style encoder costs 2*(4*d*d + 2*d*ffn) FLOPs in its projections and FFN, plus
4*n*d in attention (QK^T and AV) for a padded sequence of n tokens. For XLM-R large (d=1024, ffn=4096, 24 layers)
that is 24*24*d*d = 0.604 GFLOP per token plus 98,304*n. Embeddings and the classification head are negligible.
MFU counts padded tokens: that is the work the GPU does, whether or not a token is padding.

Peaks are looked up by the exact name NVML and torch report, never by substring: "NVIDIA L40" is not an L4 and
"NVIDIA RTX A1000" is not an A100. A MIG slice gets its parent's peak scaled by its share of the SMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Peak:
    """Dense (no sparsity) tensor-core TFLOP/s from NVIDIA's data sheets, and the SM count they assume."""

    half: float  # fp16/bf16 with fp32 accumulation
    single: float  # fp32 without TF32
    sms: int


_H100_SXM = Peak(989.4, 66.9, 132)
_H100_PCIE = Peak(756.5, 51.2, 114)
_NVL = Peak(835.5, 60.0, 132)
_A100 = Peak(312.0, 19.5, 108)
_V100_SXM = Peak(125.0, 15.7, 80)
_V100_PCIE = Peak(112.0, 14.0, 80)

PEAKS: dict[str, Peak] = {
    "nvidia h100 80gb hbm3": _H100_SXM,
    "nvidia h100 pcie": _H100_PCIE,
    "nvidia h100 nvl": _NVL,
    "nvidia h200": _H100_SXM,  # same compute as the H100 SXM, more and faster memory
    "nvidia h200 nvl": _NVL,
    "nvidia h800": _H100_SXM,
    "nvidia h800 pcie": _H100_PCIE,
    "nvidia h20": Peak(148.0, 44.0, 78),
    "nvidia gh200 480gb": _H100_SXM,
    "nvidia b200": Peak(2250.0, 80.0, 148),
    "nvidia a100-sxm4-40gb": _A100,
    "nvidia a100-sxm4-80gb": _A100,
    "nvidia a100-pcie-40gb": _A100,
    "nvidia a100 80gb pcie": _A100,
    "nvidia l4": Peak(121.0, 30.3, 58),
    "nvidia l40": Peak(181.0, 90.5, 142),
    "nvidia l40s": Peak(362.0, 91.6, 142),
    "nvidia a10": Peak(125.0, 31.2, 72),
    "nvidia a40": Peak(149.7, 37.4, 84),
    "tesla t4": Peak(65.0, 8.1, 40),
    "nvidia geforce rtx 4090": Peak(165.2, 82.6, 128),  # fp32 accumulation: half the fp16-accumulate figure
    "tesla v100-sxm2-16gb": _V100_SXM,
    "tesla v100-sxm2-32gb": _V100_SXM,
    "tesla v100-pcie-16gb": _V100_PCIE,
    "tesla v100-pcie-32gb": _V100_PCIE,
}


def flops_per_batch(config: Any, batch: int, seq_len: int) -> float:
    d, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token_layer = 2 * (4 * d * d + 2 * d * ffn) + 4 * seq_len * d
    return float(batch * seq_len * layers * per_token_layer)


def split_mig(gpu_name: str) -> tuple[str, str | None]:
    """``"NVIDIA H100 80GB HBM3 MIG 3g.40gb"`` -> (``"NVIDIA H100 80GB HBM3"``, ``"3g.40gb"``); no slice: None."""
    base, sep, slice_name = gpu_name.partition(" MIG ")
    return (base.strip(), slice_name.strip() or None) if sep else (gpu_name.strip(), None)


def peak_flops(
    gpu_name: str | None, dtype: str, sm_count: int | None = None, mig: bool = False
) -> tuple[float | None, str | None]:
    """(dense peak FLOP/s in ``dtype``, None) for a known GPU; (None, why) otherwise. ``sm_count`` is the SMs this
    process sees: a MIG slice's share of its parent's. ``mig``: MIG mode is on, so this is a slice even where its
    name does not say which."""
    if not gpu_name:
        return None, "MFU: no GPU"
    base, mig_slice = split_mig(gpu_name)
    if mig and mig_slice is None:
        return None, "MFU: a MIG slice whose size neither NVML nor torch names"
    peak = PEAKS.get(" ".join(base.lower().split()))
    if peak is None:
        return (
            None,
            f"MFU: the peak FLOP/s of {gpu_name!r} is unknown (add it to pytest_rerank_perf.machine.flops.PEAKS)",
        )
    tflops = peak.single if dtype == "fp32" else peak.half
    if mig_slice is None:
        return tflops * 1e12, None
    if not sm_count:
        return None, f"MFU: the SM count of MIG slice {mig_slice} is unknown, so its share of the peak is too"
    return tflops * 1e12 * min(1.0, sm_count / peak.sms), None
