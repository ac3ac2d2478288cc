"""Number formats for estimates: the weight matmuls of a bf16 model priced with their operands in another format.

FP8 inference (vLLM's and Neuron's fp8 serving) quantises the linear layers' weights and the activations that
enter them, and keeps everything else (norms, softmax, rotary, the attention over a bf16 KV cache, the
residual stream) in bf16: the matmuls read one byte per element and TensorE runs them at its fp8 rate (the
double-row mode on NeuronCore-v3+, `fp8_double_row` in the hardware preset; NeuronCore-v2 has no faster fp8
path, so there fp8 only halves the bytes). The model itself stays bf16 (eager PyTorch has no fp8 linear on
meta tensors); while `matmul_format(fp8)` is active the lowering hands the linear / matmul kernels fp8
operand specs, and those kernels return bf16 as fp8 matmuls do. GPU estimates price the same GEMMs at the
GPU's FP8 tensor-core peak (trnsim.gpu.precision) with one byte per element; fp4 (GPU targets with FP4
tensor cores, B200) at the FP4 peak with half a byte.

MXFP8 / MXFP4 (block-scaled formats, 32-element scale groups): on NeuronCore-v4 the weight matmuls run as the
library's MX GEMM kernels (kernels/mx_matmul.py: weights pre-quantised, activations quantised on chip by
quantize_mx, nc_matmul_mx at the preset's mx_speedup), swapped in for the bf16 kernels by `format_kernel` as the
graph is lowered (compiler/dtype_mx.py says which calls, and prices the few the kernel cannot take by its
roofline); other NeuronCores refuse them. The estimate's MFU is then measured against the MX peak (mx_speedup x
the bf16 peak). On GPUs MXFP8 runs at the FP8 tensor-core peak and MXFP4 at the FP4 one, on GPUs whose tensor
cores take block-scaled operands (Blackwell).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from trnsim import dtypes
from trnsim.errors import CompileError
from trnsim.hw.spec import HardwareSpec
from trnsim.nki.kernel import Kernel, TensorSpec
from trnsim.runtime.graph_profile import GraphProfile, MfuPeak


@dataclass(frozen=True)
class MatmulFormat:
    """The number format of an estimate's weight matmuls on each kind of target."""

    name: str
    trainium: Any  # the operand dtype NeuronCore matmuls take (None: no such matmul on a NeuronCore)
    gpu: str  # the GPU model's precision (trnsim.gpu.precision)
    bytes: float  # per element
    mx_bits: int = 0  # MX formats: bits per element (their matmuls take the MX cost path on NeuronCore-v4)


BF16 = ("bf16", "bfloat16")  # the model's own dtype: nothing to change
# fp8 double-row (NeuronCore-v3+): each PE pass contracts two K rows instead of one, twice the bf16 FLOPs per cycle
# (nc_matmul's [K, 2, .] operands, isa/instructions/nc_matmul.py); the peak fp8 MFU is measured against
FP8_DOUBLE_ROW_RATE = 2.0
FORMATS = {
    "fp8": MatmulFormat("fp8", dtypes.float8_e4m3, "float8", 1.0),
    "fp4": MatmulFormat("fp4", None, "float4", 0.5),  # Blackwell's FP4 tensor cores (NVFP4)
    # MX: elements plus one e8m0 scale byte per 32 values; NeuronCore operands stay bf16 (dtype_mx re-prices them)
    "mxfp8": MatmulFormat("mxfp8", None, "mxfp8", 1 + 1 / 32, mx_bits=8),
    "mxfp4": MatmulFormat("mxfp4", None, "mxfp4", 0.5 + 1 / 32, mx_bits=4),
}
# The library kernels that carry a model's weight matmuls (linear layers, the LM head, a mixture-of-experts
# model's experts); attention's own matmuls read the bf16 KV cache and stay bf16.
WEIGHT_MATMUL_KERNELS = frozenset({"linear", "matmul", "grouped_matmul"})
_ALLOWED = ", ".join((*BF16, *FORMATS))

_FORMAT: contextvars.ContextVar[MatmulFormat | None] = contextvars.ContextVar("trnsim_matmul_format", default=None)


def check_estimate_dtype(
    dtype: str, *, gpu: bool = False, training: bool = False, target: Any = None
) -> MatmulFormat | None:
    """The weight-matmul format for an estimate's `dtype` name (None: bf16), or a CompileError naming what is
    allowed. `target` (a Trainium preset name or HardwareSpec), when given, must have an MX matmul for MX formats."""
    name = str(dtype).lower()
    if name in BF16:
        return None
    fmt = FORMATS.get(name)
    if fmt is None:
        raise CompileError(f"unknown estimate dtype {dtype!r}; use one of {_ALLOWED}")
    if training:
        raise CompileError(f"dtype {dtype!r} is an inference format; training estimates run in bf16")
    if fmt.trainium is None and not fmt.mx_bits and not gpu:
        raise CompileError(
            f"dtype {dtype!r}: NeuronCores have no {fmt.name} matmul (their 4-bit path is MXFP4, on NeuronCore-v4); "
            "use fp8, mxfp8, mxfp4 or bf16 on Trainium-class targets, fp4 on a GPU with FP4 tensor cores (b200)"
        )
    if fmt.mx_bits and not gpu and target is not None:
        from trnsim.compiler.dtype_mx import require_mx_target
        from trnsim.hw.presets import get_spec

        require_mx_target(target if isinstance(target, HardwareSpec) else get_spec(target), dtype)
    return fmt


@contextlib.contextmanager
def matmul_format(fmt: MatmulFormat | None) -> Iterator[None]:
    """While active, weight matmuls are priced in `fmt` (None: in the model's own dtype)."""
    token = _FORMAT.set(fmt)
    try:
        yield
    finally:
        _FORMAT.reset(token)


def retype_operands(kernel: Kernel, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The kernel's arguments with the two matmul operands in the active format (timing-mode specs only)."""
    fmt = _FORMAT.get()
    if fmt is None or fmt.trainium is None or getattr(kernel, "name", "") not in WEIGHT_MATMUL_KERNELS:
        return args
    return tuple(
        TensorSpec(a.shape, fmt.trainium) if i < 2 and isinstance(a, TensorSpec) and a.dtype in _FLOATS else a
        for i, a in enumerate(args)
    )


_FLOATS = (dtypes.bfloat16, dtypes.float16, dtypes.float32)


def format_kernel(
    kernel: Kernel, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Kernel, tuple[Any, ...], dict[str, Any]]:
    """The kernel call that runs a weight matmul in the active format: the MX GEMM kernel for MX formats (where it
    takes the shapes), the same kernel on fp8 operand specs for fp8, else the call unchanged."""
    fmt = _FORMAT.get()
    if fmt is not None and fmt.mx_bits and getattr(kernel, "name", "") in WEIGHT_MATMUL_KERNELS:
        from trnsim.compiler.dtype_mx import mx_invocation

        swapped = mx_invocation(kernel, args, kwargs, fmt.mx_bits)
        if swapped is not None:
            return swapped
    return kernel, retype_operands(kernel, args), kwargs


def gpu_gemm_format(op: str, x: torch.Tensor) -> tuple[Any, float]:
    """(dtype, bytes per element) a GPU estimate prices a GEMM node in: the active format for the weight GEMMs
    (linear / addmm / mm), the operand's own dtype for batched ones (attention, experts) or when none is active."""
    fmt = _FORMAT.get()
    if fmt is None or op == "aten.bmm.default":
        return x.dtype, x.element_size()
    return fmt.gpu, fmt.bytes


def estimate_in_dtype(
    run: Callable[[], GraphProfile],
    dtype: str,
    model: torch.nn.Module,
    *,
    gpu: bool,
    training: bool,
    target: Any = None,
) -> GraphProfile:
    """`run()` (an estimate of the bf16 `model`) with its weight matmuls in `dtype`; resident weight bytes of the
    linear layers counted at the format's size. `target` (a preset name or HardwareSpec), when given, is checked
    for an MX matmul before anything runs."""
    fmt = check_estimate_dtype(dtype, gpu=gpu, training=training, target=target)
    if fmt is None:
        return run()
    with matmul_format(fmt):
        profile = run()
    if fmt.mx_bits and not gpu:
        from trnsim.compiler.dtype_mx import price_weight_matmuls_mx, require_mx_target

        require_mx_target(profile.spec, dtype)
        price_weight_matmuls_mx(profile, WEIGHT_MATMUL_KERNELS, fmt.mx_bits)  # what the MX kernel could not take
        # MFU against the peak of the format the weight matmuls ran in
        profile.mfu_peak = MfuPeak(fmt.name.upper(), profile.spec.core.tensor.mx_speedup)
    elif fmt.trainium is not None and not gpu and profile.spec.core.tensor.fp8_double_row:
        profile.mfu_peak = MfuPeak("FP8", FP8_DOUBLE_ROW_RATE)
    saved = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            w = module.weight
            saved += int(w.numel() * (w.element_size() - fmt.bytes))
    for name, w in model.named_parameters():
        if ".experts." in name and w.dim() == 3:  # the experts' stacked weights [E, K, N] (grouped matmuls)
            saved += int(w.numel() * (w.element_size() - fmt.bytes))
    if profile.weight_bytes:  # (GPU estimates do not track resident bytes)
        profile.weight_bytes -= saved // max(1, profile.tp)  # tensor parallelism splits each linear over the ranks
    return profile
