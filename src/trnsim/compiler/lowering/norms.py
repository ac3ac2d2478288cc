"""Normalisations and softmax -> the library's layernorm / rmsnorm / softmax / reduce kernels."""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported, numpy_dtype
from trnsim.compiler.lowering.table import registered


def _last_dim_only(x: torch.Tensor, normalized_shape: Any) -> None:
    if x.dtype not in KERNEL_DTYPES:
        raise Unsupported(f"dtype {x.dtype}")
    if len(list(normalized_shape)) != 1 or x.dim() < 1:
        raise Unsupported("normalisation over more than the last dimension")


@registered("aten.layer_norm.default")
def layer_norm(
    ctx: LowerContext,
    x: torch.Tensor,
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
    *_: Any,
) -> Any:
    _last_dim_only(x, normalized_shape)
    return ctx.kernel(kernels.layernorm, x, weight, bias, eps=float(eps))


@registered("aten.native_layer_norm.default")
def native_layer_norm(
    ctx: LowerContext, x: torch.Tensor, normalized_shape: Any, weight: Any, bias: Any, eps: float
) -> Any:
    """(out, mean, rstd) as autograd saves them: the norm, then the statistics from reductions."""
    _last_dim_only(x, normalized_shape)
    out = ctx.kernel(kernels.layernorm, x, weight, bias, eps=float(eps))
    stats_x = x.float() if x.dtype != torch.float32 else x
    mean = ctx.kernel(kernels.reduce_last, stats_x, "mean").unsqueeze(-1)
    centered = ctx.kernel(kernels.binary, stats_x, mean, "subtract")
    var = ctx.kernel(kernels.fused_chain, centered, [("square", None)])
    var = ctx.kernel(kernels.reduce_last, var, "mean").unsqueeze(-1)
    rstd = ctx.kernel(kernels.fused_chain, var, [("add", float(eps)), ("rsqrt", None)])
    return out, mean, rstd


@registered("aten.rms_norm.default")
def rms_norm(
    ctx: LowerContext, x: torch.Tensor, normalized_shape: Any, weight: Any = None, eps: float | None = None
) -> Any:
    _last_dim_only(x, normalized_shape)
    if eps is None:
        eps = float(torch.finfo(x.dtype).eps)
    return ctx.kernel(kernels.rmsnorm, x, weight, eps=float(eps))


@registered("norm_patterns.rmsnorm")
def fused_rmsnorm(ctx: LowerContext, x: torch.Tensor, weight: Any, eps: float, out_dtype: torch.dtype) -> Any:
    """x * rsqrt(mean(x^2) + eps) * weight, recognised by the norm-pattern pass (HF Llama/Mistral/Qwen)."""
    if x.dtype not in KERNEL_DTYPES:
        raise Unsupported(f"dtype {x.dtype}")
    if weight is not None and weight.dtype != x.dtype:
        weight = weight.to(x.dtype)
    out = ctx.kernel(kernels.rmsnorm, x, weight, eps=float(eps))
    return out if out.dtype == out_dtype else out.to(out_dtype)


@registered("aten._softmax.default", "aten.softmax.int")
def softmax(ctx: LowerContext, x: torch.Tensor, dim: int, half_to_float: Any = False) -> Any:
    if x.dtype not in KERNEL_DTYPES or x.dim() == 0:
        raise Unsupported(f"dtype {x.dtype}")
    if half_to_float is True:
        raise Unsupported("softmax with a dtype change")
    if dim % x.dim() != x.dim() - 1:
        raise Unsupported("softmax over a dimension other than the last")
    if isinstance(half_to_float, torch.dtype) and half_to_float != x.dtype:
        # softmax(x, dtype=d) casts x to d first (MoE routers: softmax(logits, dtype=float32))
        if half_to_float not in KERNEL_DTYPES:
            raise Unsupported(f"softmax to {half_to_float}")
        x = ctx.kernel(kernels.unary, x, "identity", dtype=numpy_dtype(half_to_float))
    return ctx.kernel(kernels.softmax, x)


def _reduce(op: str) -> Any:
    def lower(ctx: LowerContext, x: torch.Tensor, dims: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Any:
        if x.dtype not in KERNEL_DTYPES or dtype not in (None, x.dtype) or x.dim() == 0:
            raise Unsupported("reduction dtype")
        dims = [dims] if isinstance(dims, int) else list(dims or [])
        nd = x.dim()
        dims = sorted(d % nd for d in dims) or list(range(nd))
        if dims != list(range(nd - len(dims), nd)):
            raise Unsupported("reduction over leading dimensions")
        rows = 1
        for s in x.shape[: nd - len(dims)]:
            rows *= s
        flat = x.reshape(rows, -1)
        out = ctx.kernel(kernels.reduce_last, flat, op)
        if rows == 1 and len(dims) == nd:
            out = out.reshape(())
        shape = list(x.shape[: nd - len(dims)]) + ([1] * len(dims) if keepdim else [])
        return out.reshape(shape)

    return lower


@registered("aten.sum.dim_IntList")
def sum_dims(ctx: LowerContext, x: torch.Tensor, dims: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Any:
    return _reduce("add")(ctx, x, dims, keepdim, dtype=dtype)


@registered("aten.mean.dim")
def mean_dims(ctx: LowerContext, x: torch.Tensor, dims: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Any:
    return _reduce("mean")(ctx, x, dims, keepdim, dtype=dtype)


@registered("aten.amax.default")
def amax(ctx: LowerContext, x: torch.Tensor, dims: Any = (), keepdim: bool = False) -> Any:
    return _reduce("max")(ctx, x, dims, keepdim)
