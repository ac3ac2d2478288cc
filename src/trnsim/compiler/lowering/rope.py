"""Rotary position embedding (recognised by the elementwise-fusion pass) -> the library's rope kernel."""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported
from trnsim.compiler.lowering.table import registered


@registered("elementwise_chains.rope_embedding")
def rope_embedding(ctx: LowerContext, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> Any:
    """x * cos + rotate_half(x) * sin for x [B, H, S, D]; cos / sin [S, D] or [1 or B, 1, S, D].

    The kernel takes one [S, D] table for all of x; per-batch tables (position ids that differ between
    sequences) run the kernel once per sequence.
    """
    if x.dim() != 4 or x.dtype not in KERNEL_DTYPES or not (x.dtype == cos.dtype == sin.dtype):
        raise Unsupported("x must be [B, H, S, D] with cos / sin of its dtype")
    s, d = x.shape[2], x.shape[3]
    if cos.dim() == 2:
        return ctx.kernel(kernels.rope, x, cos, sin)
    tables = cos.shape[0]
    if cos.shape[1:] != (1, s, d) or sin.shape != cos.shape or tables not in (1, x.shape[0]):
        raise Unsupported(f"cos / sin of shape {list(cos.shape)} for x {list(x.shape)}")
    if tables == 1:
        return ctx.kernel(kernels.rope, x, cos[0, 0], sin[0, 0])
    parts = [ctx.kernel(kernels.rope, x[b : b + 1], cos[b, 0], sin[b, 0]) for b in range(tables)]
    return torch.cat(parts)
