"""scaled_dot_product_attention -> the flash-attention kernel (no mask, or causal), or matmul + softmax +
matmul kernels when an explicit mask is given."""

from __future__ import annotations

import math
from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported
from trnsim.compiler.lowering.table import registered


@registered("aten.scaled_dot_product_attention.default")
def sdpa(
    ctx: LowerContext,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Any:
    if dropout_p:
        raise Unsupported("attention dropout (training-mode randomness)")
    if q.dim() != 4 or q.dtype not in KERNEL_DTYPES or not (q.dtype == k.dtype == v.dtype):
        raise Unsupported("q/k/v must be 4-D [B, H, S, D] of one float dtype")
    _, h, s_q, d = q.shape
    s_kv = k.shape[2]
    if h % k.shape[1]:
        raise Unsupported("query heads not a multiple of the KV heads")
    # flash attention keeps a head on the partitions; longer heads (DeepSeek's 192) take the explicit path
    flash_dims = d <= ctx.spec.core.tensor.pe_rows and v.shape[-1] == d
    if attn_mask is None and (not is_causal or s_q == s_kv) and flash_dims:
        # q/k/v usually arrive as [B, S, H, D] views permuted to [B, H, S, D]: the kernel's DMAs read rows of
        # D contiguous elements either way, so the permute costs no extra copy.
        free = all(t.stride(-1) == 1 for t in (q, k, v))
        return ctx.kernel(kernels.flash_attention, q, k, v, causal=bool(is_causal), scale=scale, free_relayout=free)
    return _explicit(ctx, q, k, v, attn_mask, is_causal, scale)


def _explicit(ctx: LowerContext, q: Any, k: Any, v: Any, mask: Any, is_causal: bool, scale: float | None) -> Any:
    """softmax(q k^T * scale + mask) v as two batched matmuls around a softmax (V's head dim may differ from
    Q's and K's, as in DeepSeek's MLA)."""
    b, h, s_q, d = q.shape
    hkv, s_kv, dv = k.shape[1], k.shape[2], v.shape[-1]
    if hkv != h:  # GQA: each query head reads its group's K/V
        k = k.repeat_interleave(h // hkv, dim=1)
        v = v.repeat_interleave(h // hkv, dim=1)
        ctx.move(k, what="repeat_kv")
        ctx.move(v, what="repeat_kv")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    kt = k.reshape(b * h, s_kv, d).transpose(1, 2)
    scores = ctx.kernel(kernels.batched_matmul, q.reshape(b * h, s_q, d), kt).reshape(b, h, s_q, s_kv)
    if is_causal:
        causal = torch.ones(s_q, s_kv, dtype=torch.bool).tril()
        mask = causal if mask is None else (mask & causal if mask.dtype == torch.bool else mask)
    ops: list[tuple[str, Any]] = [("multiply", scale)]
    keep_rows = None
    if mask is not None:
        if mask.dtype == torch.bool:
            additive = torch.zeros(mask.shape, dtype=q.dtype, device=mask.device).masked_fill(~mask, float("-inf"))
        else:
            additive = mask.to(q.dtype)
        additive, keep_rows = _without_fully_masked_rows(additive)
        if additive.device.type != scores.device.type:
            additive = additive.to(scores.device)
        ops.append(("add", additive))
    scores = ctx.kernel(kernels.fused_chain, scores, ops)
    probs = ctx.kernel(kernels.softmax, scores)
    out = ctx.kernel(kernels.batched_matmul, probs.reshape(b * h, s_q, s_kv), v.reshape(b * h, s_kv, dv)).reshape(
        b, h, s_q, dv
    )
    if keep_rows is not None:
        out = ctx.kernel(kernels.fused_chain, out, [("multiply", keep_rows.to(out.device))])
    return out


def _without_fully_masked_rows(additive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """torch's SDPA gives 0 for a query that may attend to no key (a left-padded prompt's pad positions), where a
    softmax over a row of -inf is NaN. Such rows get a finite mask row (any: their output is discarded) and a
    [..., S_q, 1] factor of 0 for them, 1 elsewhere, to multiply the output by; (additive, None) when no row is
    fully masked, so ordinary masks cost no extra pass."""
    if additive.device.type == "meta":  # shapes only (timing mode): no values to find such rows in
        return additive, None
    fully_masked = torch.isneginf(additive).all(dim=-1, keepdim=True)
    if not bool(fully_masked.any()):
        return additive, None
    return additive.masked_fill(fully_masked, 0.0), (~fully_masked).to(additive.dtype)
