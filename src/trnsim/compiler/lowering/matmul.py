"""Matrix products: linear / addmm / mm / bmm and the fused linear epilogue -> library matmul kernels."""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported
from trnsim.compiler.lowering.table import registered


def _check(*ts: torch.Tensor) -> None:
    for t in ts:
        if t.dtype not in KERNEL_DTYPES:
            raise Unsupported(f"dtype {t.dtype}")
    if len({t.dtype for t in ts}) > 1:
        raise Unsupported("mixed dtypes")


@registered("aten.linear.default")
def linear(ctx: LowerContext, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> Any:
    _check(x, w, *([bias] if bias is not None else []))
    return _linear(ctx, x, w, bias)


def _linear(ctx: LowerContext, x: torch.Tensor, w: torch.Tensor, bias: Any = None, **epilogue: Any) -> Any:
    """The linear kernel with w [N, K], followed by the collective tensor parallelism needs."""
    out = ctx.kernel(kernels.linear, x, w, bias, **epilogue)
    ctx.after_linear(int(w.shape[1]), int(w.shape[0]), out)
    return out


def linear_epilogue(
    ctx: LowerContext,
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    residual: torch.Tensor | None,
) -> Any:
    """act(x @ w.T + bias) + residual in one kernel (made by the matmul-epilogue fusion pass)."""
    _check(x, w, *(t for t in (bias, residual) if t is not None))
    return _linear(ctx, x, w, bias, activation=activation, residual=residual)


@registered("aten.addmm.default")
def addmm(
    ctx: LowerContext, bias: torch.Tensor, x: torch.Tensor, w: torch.Tensor, *, beta: Any = 1, alpha: Any = 1
) -> Any:
    if beta != 1 or alpha != 1 or bias.dim() != 1:
        raise Unsupported("addmm with beta/alpha or a 2-D bias")
    _check(x, w, bias)
    return _linear(ctx, x, w.t(), bias)


@registered("aten.mm.default")
def mm(ctx: LowerContext, a: torch.Tensor, b: torch.Tensor) -> Any:
    _check(a, b)
    if b.dim() == 2 and b.t().is_contiguous():
        # b is the transpose of a row-major [N, K] matrix (a weight): stream it as linear's stationary
        return _linear(ctx, a, b.t())
    return ctx.kernel(kernels.matmul, a, b)


@registered("aten.bmm.default")
def bmm(ctx: LowerContext, a: torch.Tensor, b: torch.Tensor) -> Any:
    _check(a, b)
    return ctx.kernel(kernels.batched_matmul, a, b)
