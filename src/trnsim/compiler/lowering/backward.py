"""Lowerings for the ops training graphs add: attention with its saved statistics and its backward, the
ReLU backward, bias-gradient reductions over leading dimensions, and log-softmax with its backward.

Each is written with the library's matmul / elementwise / reduction kernels, the way a compiler without a
dedicated backward kernel would schedule them (the attention backward recomputes the probabilities from
the saved logsumexp, as flash attention's backward does).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported, numpy_dtype
from trnsim.compiler.lowering.norms import sum_dims as _sum_last_dims
from trnsim.compiler.lowering.table import registered


def _float(*ts: Any) -> None:
    for t in ts:
        if not isinstance(t, torch.Tensor) or t.dtype not in KERNEL_DTYPES or t.dim() == 0:
            raise Unsupported("needs float tensors of a kernel dtype")


def _rows_last(ctx: LowerContext, x: torch.Tensor, op: str) -> torch.Tensor:
    """Reduce over the last dimension, keeping it as size 1 (for broadcasting back)."""
    rows = x.numel() // x.shape[-1]
    return ctx.kernel(kernels.reduce_last, x.reshape(rows, x.shape[-1]), op).reshape(*x.shape[:-1], 1)


# -- attention ---------------------------------------------------------------------------------------------
def _attention_args(q: Any, k: Any, v: Any, dropout_p: float, scale: Any) -> float:
    if dropout_p:
        raise Unsupported("attention dropout (training-mode randomness)")
    _float(q, k, v)
    if q.dim() != 4 or not (q.dtype == k.dtype == v.dtype) or k.shape[1] != q.shape[1]:
        raise Unsupported("q/k/v must be 4-D [B, H, S, D] with one dtype and as many K/V heads as query heads")
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def _scores(ctx: LowerContext, q: Any, k: Any, mask: Any, is_causal: bool, scale: float) -> torch.Tensor:
    """scale * q k^T + mask as [B*H, Sq, Skv] (-inf where a boolean or causal mask hides a key)."""
    b, h, s_q, d = q.shape
    s_kv = k.shape[2]
    qk = ctx.kernel(kernels.batched_matmul, q.reshape(b * h, s_q, d), k.reshape(b * h, s_kv, d).transpose(1, 2))
    if is_causal:
        causal = torch.ones(s_q, s_kv, dtype=torch.bool, device=q.device).tril()
        mask = causal if mask is None else (mask & causal if mask.dtype == torch.bool else mask)
    ops: list[tuple[str, Any]] = [("multiply", scale)]
    if mask is not None:  # broadcast against [B, H, Sq, Skv] by the kernel
        if mask.dtype == torch.bool:
            additive = torch.zeros(mask.shape, dtype=q.dtype, device=mask.device).masked_fill(~mask, float("-inf"))
        else:
            additive = mask.to(q.dtype)
        ops.append(("add", additive.to(qk.device)))
    return ctx.kernel(kernels.fused_chain, qk.reshape(b, h, s_q, s_kv), ops).reshape(b * h, s_q, s_kv)


@registered("aten._scaled_dot_product_flash_attention_for_cpu.default")
def attention_with_logsumexp(
    ctx: LowerContext,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    attn_mask: Any = None,
    scale: Any = None,
) -> Any:
    """(out, logsumexp): attention whose row statistics the backward graph reads."""
    sc = _attention_args(q, k, v, dropout_p, scale)
    b, h, s_q, d = q.shape
    s = _scores(ctx, q, k, attn_mask, is_causal, sc)
    row_max = _rows_last(ctx, s, "max")
    e = ctx.kernel(kernels.fused_chain, s, [("subtract", row_max), ("exp", None)])
    row_sum = _rows_last(ctx, e, "add")
    p = ctx.kernel(kernels.binary, e, row_sum, "divide")
    out = ctx.kernel(kernels.batched_matmul, p, v.reshape(b * h, -1, d)).reshape(b, h, s_q, d)
    if not ctx.output_used(1):
        return out, torch.empty(b, h, s_q, dtype=torch.float32, device=out.device)
    lse = ctx.kernel(kernels.fused_chain, row_sum, [("log", None), ("add", row_max)], dtype=numpy_dtype(torch.float32))
    return out, lse.reshape(b, h, s_q)


@registered("aten._scaled_dot_product_flash_attention_for_cpu_backward.default")
def attention_backward(
    ctx: LowerContext,
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    logsumexp: torch.Tensor,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    attn_mask: Any = None,
    scale: Any = None,
) -> Any:
    """(dq, dk, dv) from the probabilities recomputed as exp(scores - logsumexp)."""
    sc = _attention_args(q, k, v, dropout_p, scale)
    _float(grad_out, out, logsumexp)
    b, h, s_q, d = q.shape
    s_kv = k.shape[2]
    s = _scores(ctx, q, k, attn_mask, is_causal, sc)
    lse = logsumexp.reshape(b * h, s_q, 1).to(s.dtype)
    p = ctx.kernel(kernels.fused_chain, s, [("subtract", lse), ("exp", None)])
    do = grad_out.reshape(b * h, s_q, d)
    dv = ctx.kernel(kernels.batched_matmul, p.transpose(1, 2), do)
    dp = ctx.kernel(kernels.batched_matmul, do, v.reshape(b * h, s_kv, d).transpose(1, 2))
    delta = _rows_last(ctx, ctx.kernel(kernels.binary, do, out.reshape(b * h, s_q, d), "multiply"), "add")
    ds = ctx.kernel(kernels.fused_chain, dp, [("subtract", delta), ("multiply", p), ("multiply", sc)])
    dq = ctx.kernel(kernels.batched_matmul, ds, k.reshape(b * h, s_kv, d))
    dk = ctx.kernel(kernels.batched_matmul, ds.transpose(1, 2), q.reshape(b * h, s_q, d))
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)


# -- activations and losses --------------------------------------------------------------------------------
@registered("aten.threshold_backward.default")
def threshold_backward(ctx: LowerContext, grad: torch.Tensor, x: torch.Tensor, threshold: Any) -> Any:
    """grad where x > threshold, else 0 (ReLU's backward): one compare-and-multiply pass."""
    _float(grad, x)
    if grad.shape != x.shape:
        raise Unsupported("broadcasting threshold_backward")
    chain = [("greater", float(threshold)), ("multiply", grad)]
    return ctx.kernel(kernels.fused_chain, x, chain, dtype=numpy_dtype(grad.dtype))


@registered("aten._log_softmax.default")
def log_softmax(ctx: LowerContext, x: torch.Tensor, dim: int, half_to_float: bool = False) -> Any:
    """x - max - log(sum(exp(x - max))) over the last dimension."""
    _float(x)
    if half_to_float or dim % x.dim() != x.dim() - 1:
        raise Unsupported("log_softmax over a dimension other than the last, or with a dtype change")
    row_max = _rows_last(ctx, x, "max")
    shifted = ctx.kernel(kernels.binary, x, row_max, "subtract")
    row_sum = _rows_last(ctx, ctx.kernel(kernels.unary, shifted, "exp"), "add")
    return ctx.kernel(kernels.binary, shifted, ctx.kernel(kernels.unary, row_sum, "log"), "subtract")


@registered("aten._log_softmax_backward_data.default")
def log_softmax_backward(
    ctx: LowerContext, grad: torch.Tensor, out: torch.Tensor, dim: int, input_dtype: torch.dtype
) -> Any:
    """grad - exp(out) * sum(grad) over the last dimension."""
    _float(grad, out)
    if dim % out.dim() != out.dim() - 1 or input_dtype != grad.dtype:
        raise Unsupported("log_softmax backward over a dimension other than the last, or with a dtype change")
    grad_sum = _rows_last(ctx, grad, "add")
    return ctx.kernel(kernels.fused_chain, out, [("exp", None), ("multiply", grad_sum), ("subtract", grad, True)])


# -- gradient reductions -----------------------------------------------------------------------------------
MAX_SLICE_ADDS = 32  # a middle axis up to this long is summed as one chain of slice adds (one streamed pass)


def _slices_stream_well(ctx: LowerContext, x: torch.Tensor, reduced: list[int]) -> bool:
    """One reduced middle axis, short, whose slices are read in DMA-efficient runs (the kernel prices its
    operands as contiguous, so the runs must be long enough for that to hold)."""
    if len(reduced) != 1 or not 0 < reduced[0] < x.dim() - 1 or not 2 <= x.shape[reduced[0]] <= MAX_SLICE_ADDS:
        return False
    run_bytes = math.prod(x.shape[reduced[0] + 1 :]) * x.element_size()
    return x.is_contiguous() and run_bytes >= ctx.spec.core.dma.efficient_row_bytes


@registered("aten.sum.dim_IntList")
def sum_dims(ctx: LowerContext, x: torch.Tensor, dims: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Any:
    """Sums over trailing dimensions as before. A sum over leading dimensions (a bias gradient: [T, N] -> [N])
    is a matmul with a row of ones on TensorE, which reads x in its natural layout; other dimension sets read
    x transposed so the reduced dimensions are last."""
    try:
        return _sum_last_dims(ctx, x, dims, keepdim, dtype=dtype)
    except Unsupported:
        pass
    _float(x)
    if dtype not in (None, x.dtype):
        raise Unsupported("reduction dtype")
    nd = x.dim()
    reduced = sorted({d % nd for d in ([dims] if isinstance(dims, int) else list(dims or range(nd)))})
    kept = [d for d in range(nd) if d not in reduced]
    kept_shape = [x.shape[d] for d in kept]
    rows = math.prod(x.shape[d] for d in reduced)
    if reduced == list(range(len(reduced))):
        ctx.materialize(x)
        ones = torch.ones(1, rows, dtype=x.dtype, device=x.device)
        out = ctx.kernel(kernels.matmul, ones, x.reshape(rows, -1), free_relayout=True)
    elif _slices_stream_well(ctx, x, reduced):
        # A short middle axis (an MoE's top-k expert outputs [T, k, H] summed over k): k - 1 elementwise adds of
        # its slices in one streamed pass read every element once, in runs of the trailing dims' bytes; the
        # transposing copy below would read and write all of x first.
        # fused_chain shortens its DMA runs when many operands would not fit in SBUF (8 fp32 slices of DeepSeek-V3's
        # 7,168 columns): one pass still beats passes of a few slices, which re-read and re-write the partial sums.
        parts = [x.select(reduced[0], j) for j in range(x.shape[reduced[0]])]
        out = ctx.kernel(kernels.fused_chain, parts[0], [("add", p) for p in parts[1:]], free_relayout=True)
    else:
        moved = x.permute(*kept, *reduced)
        ctx.materialize(moved)  # the transposing copy the reduction reads
        out = ctx.kernel(kernels.reduce_last, moved.reshape(math.prod(kept_shape), rows), "add", free_relayout=True)
    shape = [1 if d in reduced else x.shape[d] for d in range(nd)] if keepdim else kept_shape
    return out.reshape(shape)
