"""Matrix products: linear / addmm / mm / bmm and the fused linear epilogue -> library matmul kernels."""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported, is_constant, numpy_dtype
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
    if bias is None and is_constant(w) and x.numel() > 0:
        # A constant weight is laid out once, offline, in the layout its kernel wants: NxD Inference compiles with
        # weight layout optimization on by default (ModelBuilder's priority_model_idx=0, "enable WLO") and its
        # QKV/MLP kernels store weights transposed on the host, so no deployment transposes a constant weight on
        # chip at every call. Stored K-major, the weight is the moving side of the matmul kernel (tokens
        # stationary), which streams it with no weight transposes; the linear kernel would transpose [out, in]
        # tiles on TensorE each call. So one kernel is priced, not the faster of both (docs/compiler.md).
        ctx.materialize(x)
        x2 = x.reshape(-1, x.shape[-1])
        out = ctx.kernel(kernels.matmul, x2, w.t()).reshape(*x.shape[:-1], w.shape[0])
        ctx.after_linear(int(w.shape[1]), int(w.shape[0]), out)
        return out
    return _linear(ctx, x, w, bias)


def _linear(ctx: LowerContext, x: torch.Tensor, w: torch.Tensor, bias: Any = None, **epilogue: Any) -> Any:
    """The linear kernel with w [N, K], followed by the collective tensor parallelism needs."""
    out = ctx.kernel(kernels.linear, x, w, bias, **epilogue)
    ctx.after_linear(int(w.shape[1]), int(w.shape[0]), out)
    return out


def _collective_after(ctx: LowerContext, w: torch.Tensor) -> bool:
    """Whether tensor parallelism puts a collective (a row-parallel all-reduce) right after this linear."""
    return ctx.tp_plan is not None and ctx.tp_plan.after_linear(int(w.shape[1]), int(w.shape[0]), 0) is not None


@registered("matmul_epilogue.linear_epilogue")
def linear_epilogue(
    ctx: LowerContext,
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    residual: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> Any:
    """act(x @ w.T + bias) + residual, cast to out_dtype, in one kernel (made by the matmul-epilogue pass)."""
    _check(x, w, *(t for t in (bias, residual) if t is not None))
    if out_dtype not in KERNEL_DTYPES:
        raise Unsupported(f"output dtype {out_dtype}")
    odt = None if out_dtype == x.dtype else numpy_dtype(out_dtype)
    if residual is not None and _collective_after(ctx, w):
        # A row-parallel linear's partial sums are all-reduced before the residual joins them: keep the add
        # after the collective instead of fusing it.
        out = _linear(ctx, x, w, bias, activation=activation)
        return ctx.kernel(kernels.binary, out, residual, "add", dtype=numpy_dtype(out_dtype))
    return _linear(ctx, x, w, bias, activation=activation, residual=residual, out_dtype=odt)


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
    out = ctx.kernel(kernels.batched_matmul, a, b)
    ctx.after_expert_bmm(int(b.shape[-2]), int(b.shape[-1]), out)  # tensor-parallel experts (Llama-4)
    return out
