"""Embedding lookups -> the library's DMA-gather embedding kernel."""

from __future__ import annotations

from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported
from trnsim.compiler.lowering.table import registered


@registered("aten.embedding.default")
def embedding(ctx: LowerContext, weight: torch.Tensor, ids: torch.Tensor, *_: Any, **__: Any) -> Any:
    if weight.dtype not in KERNEL_DTYPES or weight.dim() != 2 or ids.dim() not in (1, 2):
        raise Unsupported("embedding table/ids layout")
    if ids.device.type == "meta":
        # Timing runs carry no ids; which rows are gathered does not change the DMA stream's cost.
        host_ids: Any = torch.zeros(ids.shape, dtype=torch.long).tolist()
        ctx.materialize(ids)  # an expanded (stride-0) ids tensor is laid out first, as in a functional run
        out = ctx.kernel(kernels.embedding, host_ids, weight)
        return out
    return ctx.kernel(kernels.embedding, ids.to(torch.long), weight)
