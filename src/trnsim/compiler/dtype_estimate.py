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

MXFP8 / MXFP4 (block-scaled formats, 32-element scale groups): the isa has nc_matmul_mx (NeuronCore-v4), but the
library's linear/matmul kernels have no MX path yet, so estimates refuse them with a clear error rather than
pricing them at a guessed rate.
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
from trnsim.nki.kernel import Kernel, TensorSpec
from trnsim.runtime.graph_profile import GraphProfile


@dataclass(frozen=True)
class MatmulFormat:
    """The number format of an estimate's weight matmuls on each kind of target."""

    name: str
    trainium: Any  # the operand dtype NeuronCore matmuls take (None: no such matmul on a NeuronCore)
    gpu: str  # the GPU model's precision (trnsim.gpu.precision)
    bytes: float  # per element


BF16 = ("bf16", "bfloat16")  # the model's own dtype: nothing to change
FORMATS = {
    "fp8": MatmulFormat("fp8", dtypes.float8_e4m3, "float8", 1.0),
    "fp4": MatmulFormat("fp4", None, "float4", 0.5),  # Blackwell's FP4 tensor cores (NVFP4)
}
NOT_YET = {"mxfp8", "mxfp4"}  # named by the issue; need an MX path (quantize_mx + nc_matmul_mx) in the linear kernels
# The library kernels that carry a model's weight matmuls (linear layers, the LM head); attention's own
# matmuls read the bf16 KV cache and stay bf16.
WEIGHT_MATMUL_KERNELS = frozenset({"linear", "matmul"})
_ALLOWED = ", ".join((*BF16, *FORMATS))

_FORMAT: contextvars.ContextVar[MatmulFormat | None] = contextvars.ContextVar("trnsim_matmul_format", default=None)


def check_estimate_dtype(dtype: str, *, gpu: bool = False, training: bool = False) -> MatmulFormat | None:
    """The weight-matmul format for an estimate's `dtype` name (None: bf16), or a CompileError naming what is
    allowed."""
    name = str(dtype).lower()
    if name in NOT_YET:
        raise CompileError(
            f"dtype {dtype!r}: MX formats are not modelled yet in estimates (nisa.nc_matmul_mx runs in NeuronCore-v4 "
            f"kernels, but the library's linear/matmul kernels have no MX path); use one of {_ALLOWED}"
        )
    if name in BF16:
        return None
    fmt = FORMATS.get(name)
    if fmt is None:
        raise CompileError(f"unknown estimate dtype {dtype!r}; use one of {_ALLOWED}")
    if training:
        raise CompileError(f"dtype {dtype!r} is an inference format; training estimates run in bf16")
    if fmt.trainium is None and not gpu:
        raise CompileError(
            f"dtype {dtype!r}: NeuronCores have no {fmt.name} matmul (their 4-bit path is MXFP4, not modelled "
            "yet); use fp8 or bf16 on Trainium-class targets, fp4 on a GPU with FP4 tensor cores (b200)"
        )
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


def gpu_gemm_format(op: str, x: torch.Tensor) -> tuple[Any, float]:
    """(dtype, bytes per element) a GPU estimate prices a GEMM node in: the active format for the weight GEMMs
    (linear / addmm / mm), the operand's own dtype for batched ones (attention, experts) or when none is active."""
    fmt = _FORMAT.get()
    if fmt is None or op == "aten.bmm.default":
        return x.dtype, x.element_size()
    return fmt.gpu, fmt.bytes


def estimate_in_dtype(
    run: Callable[[], GraphProfile], dtype: str, model: torch.nn.Module, *, gpu: bool, training: bool
) -> GraphProfile:
    """`run()` (an estimate of the bf16 `model`) with its weight matmuls in `dtype`; resident weight bytes of the
    linear layers counted at the format's size."""
    fmt = check_estimate_dtype(dtype, gpu=gpu, training=training)
    if fmt is None:
        return run()
    with matmul_format(fmt):
        profile = run()
    saved = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            w = module.weight
            saved += int(w.numel() * (w.element_size() - fmt.bytes))
    if profile.weight_bytes:  # (GPU estimates do not track resident bytes)
        profile.weight_bytes -= saved // max(1, profile.tp)  # tensor parallelism splits each linear over the ranks
    return profile
