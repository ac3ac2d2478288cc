"""Which peak and which fitted GEMM curves a dtype uses on a GPU, and its element size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trnsim.gpu.errors import GpuError
from trnsim.gpu.spec import GpuCompute


@dataclass(frozen=True)
class Precision:
    name: str
    bytes: float  # per element (FP4 packs two in a byte)
    peak_field: str  # the GpuCompute field holding this dtype's peak
    tensor_cores: bool  # tensor-core kernels (curves "tensor") or CUDA-core kernels (curves "simt")
    # MX block-scaled operands (one e8m0 scale per 32 values) need tensor cores that apply the scales, which came
    # with the FP4 generation (Blackwell: "MXFP8, MXFP6, MXFP4" in NVIDIA's Blackwell architecture brief); a
    # GPU's preset says it has them by giving an FP4 peak. Hopper's FP8 tensor cores take one scale per tensor.
    block_scaled: bool = False

    def peak_flops(self, compute: GpuCompute) -> float:
        peak = getattr(compute, self.peak_field)
        if peak is None:  # an optional peak the preset leaves out: this GPU has no such tensor cores
            raise GpuError(f"this GPU has no {self.name} tensor cores (its preset gives no {self.peak_field})")
        if self.block_scaled and compute.dense_fp4_tflops is None:
            raise GpuError(
                f"this GPU has no {self.name} tensor cores (MX block scaling came with FP4-capable tensor cores, "
                "Blackwell; its preset gives no dense_fp4_tflops): use fp8"
            )
        return float(peak) * 1e12


_BF16 = Precision("bfloat16", 2, "dense_bf16_tflops", True)
_FP16 = Precision("float16", 2, "dense_fp16_tflops", True)
_FP8 = Precision("float8", 1, "dense_fp8_tflops", True)
# FP4 (NVFP4 / MXFP4 operands): half a byte per element; the block scales (one byte per 16 or 32 elements)
# are left out of the bytes.
_FP4 = Precision("float4", 0.5, "dense_fp4_tflops", True)
# MXFP8: FP8 elements at the FP8 tensor-core peak, the scales (1/32 byte per element) counted in the bytes.
_MXFP8 = Precision("mxfp8", 1 + 1 / 32, "dense_fp8_tflops", True, block_scaled=True)
_TF32 = Precision("tfloat32", 4, "dense_tf32_tflops", True)
# fp32 as in the measured data (torch.backends.cuda.matmul.allow_tf32 = False): the CUDA-core FP32 peak.
_FP32 = Precision("float32", 4, "fp32_tflops", False)

_BY_NAME = {
    "bfloat16": _BF16,
    "bf16": _BF16,
    "float16": _FP16,
    "fp16": _FP16,
    "half": _FP16,
    "float8": _FP8,
    "fp8": _FP8,
    "float8_e4m3fn": _FP8,
    "float8_e4m3": _FP8,
    "float8_e5m2": _FP8,
    "float4": _FP4,
    "fp4": _FP4,
    "nvfp4": _FP4,
    "mxfp4": _FP4,
    "mxfp8": _MXFP8,
    "tfloat32": _TF32,
    "tf32": _TF32,
    "float32": _FP32,
    "fp32": _FP32,
    "float": _FP32,
}


def precision_of(dtype: Any) -> Precision:
    """A dtype name ("bfloat16", "fp8", ...) or a torch dtype, as the GPU model's Precision."""
    key = str(dtype).removeprefix("torch.").lower()
    try:
        return _BY_NAME[key]
    except KeyError:
        known = ", ".join(sorted({p.name for p in _BY_NAME.values()}))
        raise GpuError(
            f"the GPU model has no dtype {dtype!r}; use one of {known} "
            "(float32 means CUDA-core FP32 with TF32 off; tfloat32 the TF32 tensor cores)"
        ) from None
