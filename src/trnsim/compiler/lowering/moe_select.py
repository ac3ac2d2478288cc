"""Group-limited routers (DeepSeek-V3: sigmoid scores, top groups, masked top-k) -> the select kernels:
gather / scatter along the last dim, where / masked_fill, and the bool casts and negation between them.

Booleans live on the chip as 1.0 / 0.0 in a float tile, as comparisons leave it (see elementwise.py); a bool
tensor entering a kernel is that float tile and a bool result is read back from one.
"""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported, numpy_dtype
from trnsim.compiler.lowering.moe import narrow_index
from trnsim.compiler.lowering.moe import to_copy as index_cast
from trnsim.compiler.lowering.table import registered


def _rows(t: torch.Tensor) -> torch.Tensor:
    """t as [rows, last dim] (a free view of a contiguous tensor)."""
    if not t.is_contiguous() or t.dim() == 0:
        raise Unsupported("a strided or 0-d tensor")
    return t.reshape(-1, t.shape[-1])


def _as_float(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor as the chip holds it: 1.0 / 0.0 in fp32."""
    if mask.device.type == "meta":
        return torch.empty(mask.shape, dtype=torch.float32, device="meta")
    return mask.to(torch.float32)


def _as_bool(flags: torch.Tensor) -> torch.Tensor:
    if flags.device.type == "meta":
        return torch.empty(flags.shape, dtype=torch.bool, device="meta")
    return flags.to(torch.bool)


def _last_dim(x: torch.Tensor, dim: int, index: torch.Tensor) -> None:
    if x.dtype not in KERNEL_DTYPES or dim not in (-1, x.dim() - 1) or index.dim() != x.dim():
        raise Unsupported("along the last dim of a float tensor")
    if index.dtype not in (torch.int64, torch.int32) or tuple(index.shape[:-1]) != tuple(x.shape[:-1]):
        raise Unsupported("an integer index with x's leading shape")
    if index.device.type != "meta" and index.numel() and (index.min() < 0 or index.max() >= x.shape[-1]):
        raise Unsupported("negative or out-of-range indices")


@registered("aten.gather.default")
def gather(ctx: LowerContext, x: torch.Tensor, dim: int, index: torch.Tensor, *, sparse_grad: bool = False) -> Any:
    _last_dim(x, dim, index)
    out = ctx.kernel(kernels.gather_last, _rows(x), narrow_index(_rows(index)))
    return out.reshape(index.shape)


@registered("aten.scatter.value")
def scatter_value(ctx: LowerContext, x: torch.Tensor, dim: int, index: torch.Tensor, value: Any) -> Any:
    _last_dim(x, dim, index)
    if not isinstance(value, int | float):
        raise Unsupported("a tensor value")
    return ctx.kernel(kernels.scatter_last, _rows(x), narrow_index(_rows(index)), float(value)).reshape(x.shape)


def _branch(t: Any, shape: torch.Size) -> Any:
    """A where() branch as the kernel takes it: a number (Python or 0-d tensor) or a same-shaped [rows, cols]."""
    if isinstance(t, bool | int | float):
        return float(t)
    if isinstance(t, torch.Tensor) and t.dim() == 0:
        return 0.0 if t.device.type == "meta" else float(t.item())  # the value does not change the stream
    if not isinstance(t, torch.Tensor) or t.shape != shape or t.dtype not in KERNEL_DTYPES:
        raise Unsupported("where() branches of the condition's shape (no broadcasting)")
    return _rows(t)


@registered("aten.where.self")
def where(ctx: LowerContext, cond: torch.Tensor, a: Any, b: Any) -> Any:
    if cond.dtype != torch.bool or cond.dim() == 0:
        raise Unsupported("a bool condition tensor")
    dtype = torch.result_type(a, b)
    if dtype not in KERNEL_DTYPES:
        raise Unsupported(f"result dtype {dtype}")
    first, second = _branch(a, cond.shape), _branch(b, cond.shape)
    if isinstance(first, float) and isinstance(second, float):
        raise Unsupported("two scalar branches")
    if any(isinstance(t, torch.Tensor) and t.dtype != dtype for t in (first, second)):
        raise Unsupported("branches of different dtypes")
    return ctx.kernel(kernels.where, _rows(_as_float(cond)), first, second).reshape(cond.shape)


@registered("aten.bitwise_not.default")
def bitwise_not(ctx: LowerContext, x: torch.Tensor) -> Any:
    """~mask on a bool tensor: 1 - x on VectorE."""
    if x.dtype != torch.bool or x.dim() == 0:
        raise Unsupported("logical not of a bool tensor")
    flags = ctx.kernel(kernels.fused_chain, _as_float(x), [("subtract", 1.0, True)])
    return _as_bool(flags)


@registered("aten._to_copy.default")
def to_copy(ctx: LowerContext, x: torch.Tensor, *, dtype: torch.dtype | None = None, **kwargs: Any) -> Any:
    """x.bool() of a float tensor: x != 0 on VectorE; other casts as moe.to_copy lowers them."""
    if dtype != torch.bool or x.dtype not in KERNEL_DTYPES or x.dim() == 0:
        return index_cast(ctx, x, dtype=dtype, **kwargs)
    return _as_bool(ctx.kernel(kernels.binary, x, 0.0, "not_equal", dtype=numpy_dtype(torch.float32)))
