"""Number formats for estimates: the weight matmuls of a bf16 model priced with their operands in another format.

FP8 inference (vLLM's and Neuron's fp8 serving) quantises the linear layers' weights and the activations that
enter them, and keeps everything else (norms, softmax, rotary, the attention over a bf16 KV cache, the
residual stream) in bf16: the matmuls read one byte per element and TensorE runs them at its fp8 rate (the
double-row mode on NeuronCore-v3+, `fp8_double_row` in the hardware preset; NeuronCore-v2 has no faster fp8
path, so there fp8 only halves the bytes). The model itself stays bf16 (eager PyTorch has no fp8 linear on
meta tensors); while `matmul_operands(fp8)` is active the lowering hands the linear / matmul kernels fp8
operand specs, and those kernels return bf16 as fp8 matmuls do. GPU estimates price the same GEMMs at the
GPU's FP8 tensor-core peak (trnsim.gpu.precision) with one byte per element.

MXFP8 / MXFP4 (block-scaled formats, 32-element scale groups) need the MX matmul instructions in the isa;
until they exist they are refused with a clear error rather than priced at a guessed rate.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import torch

from trnsim import dtypes
from trnsim.errors import CompileError
from trnsim.nki.kernel import Kernel, TensorSpec
from trnsim.runtime.graph_profile import GraphProfile

# estimate dtype name -> the dtype of the weight matmuls' operands (None: the model's own dtype)
ESTIMATE_DTYPES: dict[str, Any] = {"bf16": None, "bfloat16": None, "fp8": dtypes.float8_e4m3}
NOT_YET = {"mxfp8", "mxfp4"}  # named by the issue; need the isa's MX matmul (nc_matmul_mx) first
# The library kernels that carry a model's weight matmuls (linear layers, the LM head); attention's own
# matmuls read the bf16 KV cache and stay bf16.
WEIGHT_MATMUL_KERNELS = frozenset({"linear", "matmul"})

_OPERAND_DTYPE: contextvars.ContextVar[Any] = contextvars.ContextVar("trnsim_matmul_operand_dtype", default=None)


def check_estimate_dtype(dtype: str, *, training: bool = False) -> Any:
    """The operand dtype for an estimate's `dtype` name, or a CompileError naming what is allowed."""
    name = str(dtype).lower()
    if name in NOT_YET:
        raise CompileError(
            f"dtype {dtype!r}: MX formats are not modelled yet (the isa has no MX matmul instruction); "
            f"use one of {', '.join(ESTIMATE_DTYPES)}"
        )
    if name not in ESTIMATE_DTYPES:
        raise CompileError(f"unknown estimate dtype {dtype!r}; use one of {', '.join(ESTIMATE_DTYPES)}")
    operand = ESTIMATE_DTYPES[name]
    if operand is not None and training:
        raise CompileError(f"dtype {dtype!r} is an inference format; training estimates run in bf16")
    return operand


@contextlib.contextmanager
def matmul_operands(dtype: Any) -> Iterator[None]:
    """While active, the lowering gives weight-matmul kernels operands of `dtype` (None: leave them as they are)."""
    token = _OPERAND_DTYPE.set(dtype)
    try:
        yield
    finally:
        _OPERAND_DTYPE.reset(token)


def retype_operands(kernel: Kernel, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The kernel's arguments with the two matmul operands in the active format (timing-mode specs only)."""
    dtype = _OPERAND_DTYPE.get()
    if dtype is None or getattr(kernel, "name", "") not in WEIGHT_MATMUL_KERNELS:
        return args
    return tuple(
        TensorSpec(a.shape, dtype) if i < 2 and isinstance(a, TensorSpec) and a.dtype in _FLOATS else a
        for i, a in enumerate(args)
    )


_FLOATS = (dtypes.bfloat16, dtypes.float16, dtypes.float32)


def gpu_gemm_format(op: str, x: torch.Tensor) -> tuple[Any, int]:
    """(dtype, bytes per element) a GPU estimate prices a GEMM node in: the active format for the weight GEMMs
    (linear / addmm / mm), the operand's own dtype for batched ones (attention, experts) or when none is active."""
    operand = _OPERAND_DTYPE.get()
    if operand is None or op == "aten.bmm.default":
        return x.dtype, x.element_size()
    return "float8", operand.itemsize


def estimate_in_dtype(
    run: Callable[[], GraphProfile], dtype: str, model: torch.nn.Module, *, training: bool
) -> GraphProfile:
    """`run()` (an estimate of the bf16 `model`) with its weight matmuls in `dtype`; resident weight bytes of the
    linear layers counted at the format's size."""
    operand = check_estimate_dtype(dtype, training=training)
    if operand is None:
        return run()
    with matmul_operands(operand):
        profile = run()
    saved = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            w = module.weight
            saved += w.numel() * (w.element_size() - operand.itemsize)
    if profile.weight_bytes:  # (GPU estimates do not track resident bytes)
        profile.weight_bytes -= saved // max(1, profile.tp)  # tensor parallelism splits each linear over the ranks
    return profile
