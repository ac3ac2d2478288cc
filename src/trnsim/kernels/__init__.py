"""The kernel library: NKI kernels (current API style) the compiler lowers PyTorch ops to.

Each export is an `@nki.jit` kernel taking arrays in their natural layout, so
`nki.simulate(trnsim.kernels.matmul)(a, b)` computes `a @ b` and `trnsim.nki.profile(...)` times it.
"""

from __future__ import annotations

# Imported eagerly: a module named like its kernel (matmul, transpose, rope, embedding) would otherwise
# shadow the kernel as a package attribute once anything imported the module.
from trnsim.kernels.attention import decode_attention, flash_attention
from trnsim.kernels.conv import avg_pool2d, conv2d, max_pool2d
from trnsim.kernels.elementwise import binary, fused_chain, unary
from trnsim.kernels.embedding import embedding
from trnsim.kernels.grouped_matmul import grouped_matmul
from trnsim.kernels.matmul import batched_matmul, linear, matmul
from trnsim.kernels.moe_dispatch import gather_rows, index_arith, scatter_rows
from trnsim.kernels.moe_router import cumsum, histogram, sort, sort_ranks_bounded, topk
from trnsim.kernels.moe_select import gather_last, scatter_last, where
from trnsim.kernels.reductions import layernorm, reduce_last, rmsnorm, softmax
from trnsim.kernels.rope import rope
from trnsim.kernels.transpose import transpose

__all__ = [
    "avg_pool2d",
    "batched_matmul",
    "binary",
    "conv2d",
    "cumsum",
    "decode_attention",
    "embedding",
    "flash_attention",
    "fused_chain",
    "gather_last",
    "gather_rows",
    "grouped_matmul",
    "histogram",
    "index_arith",
    "layernorm",
    "linear",
    "matmul",
    "max_pool2d",
    "reduce_last",
    "rmsnorm",
    "rope",
    "scatter_last",
    "scatter_rows",
    "softmax",
    "sort",
    "sort_ranks_bounded",
    "topk",
    "transpose",
    "unary",
    "where",
]
