"""clamp and max-with-index: elementwise bounds (gpt-oss's clamped SwiGLU) and a row maximum with its position
(gpt-oss's attention sinks take max over the last dim) -> fused_chain and topk kernels."""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported, numpy_dtype
from trnsim.compiler.lowering.table import registered


def _bound(x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool | int | float):
        return float(x)
    raise Unsupported("a tensor bound")


@registered("aten.clamp.default")
def clamp(ctx: LowerContext, x: torch.Tensor, min: Any = None, max: Any = None) -> Any:
    """min(max(x, lo), hi) in one pass (VectorE), either bound optional."""
    if x.dtype not in KERNEL_DTYPES or x.dim() == 0:
        raise Unsupported("clamp of a float tensor")
    lo, hi = _bound(min), _bound(max)
    chain = [("maximum", lo)] if lo is not None else []
    chain += [("minimum", hi)] if hi is not None else []
    if not chain:
        raise Unsupported("clamp without bounds")
    return ctx.kernel(kernels.fused_chain, x, chain, dtype=numpy_dtype(x.dtype))


@registered("aten.max.dim")
def max_dim(ctx: LowerContext, x: torch.Tensor, dim: int, keepdim: bool = False) -> Any:
    """(values, indices) of the maximum over the last dim: the top-1 of each row."""
    if x.dtype not in KERNEL_DTYPES or x.dim() == 0 or dim not in (-1, x.dim() - 1):
        raise Unsupported("max over the last dim of a float tensor")
    values, indices = ctx.kernel(kernels.topk, x.reshape(-1, x.shape[-1]), 1)
    shape = (*x.shape[:-1], 1) if keepdim else tuple(x.shape[:-1])
    if indices.device.type == "meta":
        return values.reshape(shape), torch.empty(shape, dtype=torch.int64, device="meta")
    return values.reshape(shape), indices.to(torch.int64).reshape(shape)  # int32 on chip, see moe.py
