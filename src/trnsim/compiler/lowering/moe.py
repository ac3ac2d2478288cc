"""Mixture-of-experts routing and expert matmuls -> the library's router, dispatch and grouped-matmul kernels.

The ops transformers' MoE layers (Mixtral, Qwen2/3-MoE, DeepSeek, gpt-oss, ...) emit between the router's
softmax and the experts' combine: topk, sort of the flat expert ids, slot // k, row gathers by index,
int -> float casts, histc + cumsum for the expert offsets, grouped_mm (aten._grouped_mm or transformers'
grouped_mm_fallback), and the index_put that inverts the sort permutation.

Index tensors live on the chip as int32 (NKI has no 64-bit integers): an int64 index entering a kernel is
read as int32 and an index result leaves as the int64 the graph expects; the change of width is bookkeeping
of this lowering, not a device op (the Neuron compiler also narrows int64 indices).

In timing mode (meta tensors) the router's outputs have no values. The gathers and scatters do not need
them: they move rows by indirect DMA, 128 per DMA, whatever the indices (kernels/moe_dispatch.py). The
experts' group sizes do: tokens are then spread evenly over the experts (balanced groups), or at the
routing an expert-parallel estimate samples. Functional runs use the real routing.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

import torch

from trnsim import kernels
from trnsim.compiler.expert_parallel_routing import active_local_expert_rows
from trnsim.compiler.lowering.context import KERNEL_DTYPES, LowerContext, Unsupported, numpy_dtype
from trnsim.compiler.lowering.elementwise import to_copy as float_cast
from trnsim.compiler.lowering.table import registered

INDEX_DTYPES = (torch.int64, torch.int32)
# Set on topk's indices (and kept by views): they are column numbers below this bound.
INDEX_BOUND = "_trnsim_index_bound"
VALUE_DTYPES = (*KERNEL_DTYPES, torch.int32, torch.int64)


def _meta(t: torch.Tensor) -> bool:
    return t.device.type == "meta"


def narrow_index(t: torch.Tensor) -> torch.Tensor:
    """An int64 tensor as the int32 the chip holds (see the module docstring); others unchanged."""
    if t.dtype != torch.int64:
        return t
    if _meta(t):
        return torch.empty(t.shape, dtype=torch.int32, device="meta")
    if t.numel() and (t.min() < -(2**31) or t.max() >= 2**31):
        raise Unsupported("int64 values beyond int32")
    return t.to(torch.int32)


def _widen(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A kernel's int32 result as the graph's dtype (int64 for torch's index results)."""
    if t.dtype == dtype:
        return t
    if _meta(t):
        return torch.empty(t.shape, dtype=dtype, device="meta")
    return t.to(dtype)


def _index_vector(idx: torch.Tensor, rows: int) -> torch.Tensor:
    """Row indices as the int32 vector the dispatch kernels load into their indirect DMAs' index tiles (in
    timing mode a shape only: an indirect DMA stream does not depend on the values)."""
    flat = idx.reshape(-1)
    if not _meta(flat) and flat.numel() and (flat.min() < 0 or flat.max() >= rows):
        raise Unsupported("negative or out-of-range indices")
    return narrow_index(flat)


def _vector_op(x: torch.Tensor) -> torch.Tensor:
    """x flattened to the vector the index kernels take (a free view of a contiguous tensor)."""
    if not x.is_contiguous():
        raise Unsupported("a strided index tensor")
    return x.reshape(-1)


# -- the router ------------------------------------------------------------------------------------------
@registered("aten.topk.default")
def topk(ctx: LowerContext, x: torch.Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    if x.dim() == 0 or dim not in (-1, x.dim() - 1) or x.dtype not in KERNEL_DTYPES:
        raise Unsupported("topk over the last dim of a float tensor")
    x2 = x.reshape(-1, x.shape[-1])
    values, indices = ctx.kernel(kernels.topk, x2, int(k), largest=bool(largest))
    out_shape = (*x.shape[:-1], int(k))
    ids = _widen(indices, torch.int64).reshape(out_shape)
    setattr(ids, INDEX_BOUND, int(x.shape[-1]))  # column numbers: a later sort of them can count instead
    return values.reshape(out_shape), ids


def _sort(ctx: LowerContext, x: torch.Tensor, dim: int, descending: bool) -> Any:
    if x.dim() != 1 or dim not in (0, -1) or x.dtype not in VALUE_DTYPES:
        raise Unsupported("sort of a vector")
    bound = getattr(x, INDEX_BOUND, None)
    if bound is not None and not descending and bound <= ctx.spec.core.psum.bank_bytes // 4:
        return _counting_sort(ctx, x, bound)
    values, positions = ctx.kernel(kernels.sort, narrow_index(x), descending=bool(descending))
    return _widen(values, x.dtype), _widen(positions, torch.int64)


def _counting_sort(ctx: LowerContext, x: torch.Tensor, bound: int) -> Any:
    """Expert ids (topk column numbers below `bound`): counted ranks on the chip, then every id and slot
    number moved to its rank by indirect DMA, 128 rows per DMA, as the gathers move theirs."""
    keys = narrow_index(x)
    ranks = ctx.kernel(kernels.sort_ranks_bounded, keys, int(bound))
    size = x.shape[0]
    device = "meta" if _meta(x) else "cpu"
    base = torch.zeros(size, dtype=torch.int32, device=device)  # never read: the ranks cover every row
    slots = torch.arange(size, dtype=torch.int32, device=device)  # slot numbers, a constant
    positions = _index_vector(ranks, size)
    values = ctx.kernel(kernels.scatter_rows, base, positions, keys)
    perm = ctx.kernel(kernels.scatter_rows, base, positions, slots)
    return _widen(values, x.dtype), _widen(perm, torch.int64)


@registered("aten.sort.default")
def sort(ctx: LowerContext, x: torch.Tensor, dim: int = -1, descending: bool = False) -> Any:
    return _sort(ctx, x, dim, descending)


@registered("aten.sort.stable")
def sort_stable(
    ctx: LowerContext, x: torch.Tensor, *, stable: bool | None = None, dim: int = -1, descending: bool = False
) -> Any:
    return _sort(ctx, x, dim, descending)  # the kernel's sort is stable


@registered("aten.histc.default")
def histc(ctx: LowerContext, x: torch.Tensor, bins: int = 100, min: float = 0, max: float = 0) -> Any:
    # CPU code histograms float ids, CUDA / meta code int32 ones; the counts come in x's dtype either way
    if x.dtype not in VALUE_DTYPES or float(min) >= float(max):
        raise Unsupported("histc over a given range")
    chip = narrow_index(_vector_op(x))
    counts = ctx.kernel(kernels.histogram, chip, int(bins), float(min), float(max), out_dtype=numpy_dtype(chip.dtype))
    return _widen(counts, x.dtype)


@registered("aten.cumsum.default")
def cumsum(ctx: LowerContext, x: torch.Tensor, dim: int, *, dtype: torch.dtype | None = None) -> Any:
    if x.dim() not in (1, 2) or dim not in (-1, x.dim() - 1) or x.dtype not in VALUE_DTYPES:
        raise Unsupported("cumsum along the last dim of a vector or matrix")
    want = dtype or x.dtype
    if want not in VALUE_DTYPES:
        raise Unsupported(f"cumsum to {want}")
    chip_out = torch.int32 if want == torch.int64 else want
    out = ctx.kernel(kernels.cumsum, narrow_index(x), out_dtype=numpy_dtype(chip_out))
    return _widen(out, want)


# -- dispatch and combine ----------------------------------------------------------------------------------
@registered("aten.index.Tensor")
def index(ctx: LowerContext, x: torch.Tensor, indices: list[Any]) -> Any:
    """x[idx] for one integer index tensor on dim 0 (the token gathers before and after the experts)."""
    if len(indices) != 1 or not isinstance(indices[0], torch.Tensor) or indices[0].dtype not in INDEX_DTYPES:
        raise Unsupported("indexing by one integer tensor on dim 0")
    if x.dim() not in (1, 2) or x.dtype not in VALUE_DTYPES:
        raise Unsupported("gather from a vector or matrix")
    idx = indices[0]
    out = ctx.kernel(kernels.gather_rows, narrow_index(x), _index_vector(idx, x.shape[0]))
    return _widen(out, x.dtype).reshape(*idx.shape, *x.shape[1:])


@registered("aten.index_put.default")
def index_put(
    ctx: LowerContext, x: torch.Tensor, indices: list[Any], values: torch.Tensor, accumulate: bool = False
) -> Any:
    """x[idx] = values for one integer index vector on dim 0 (inverting the sort permutation)."""
    if accumulate or len(indices) != 1 or not isinstance(indices[0], torch.Tensor):
        raise Unsupported("index_put without accumulate, by one index tensor")
    idx = indices[0]
    if idx.dim() != 1 or idx.dtype not in INDEX_DTYPES or x.dim() not in (1, 2) or x.dtype not in VALUE_DTYPES:
        raise Unsupported("index_put of rows of a vector or matrix")
    if tuple(values.shape) != (idx.shape[0], *x.shape[1:]):
        raise Unsupported("values broadcast over the indexed rows")
    chip_values = narrow_index(values.to(x.dtype) if values.dtype != x.dtype and not _meta(values) else values)
    positions = _index_vector(idx, x.shape[0])
    base = x
    if x.dtype == torch.int64 and not _meta(x) and torch.unique(idx).numel() == x.shape[0]:
        # every row is overwritten (the inverse of a permutation into `empty_like`): x's own values, which
        # may be uninitialised memory beyond int32, are never read
        base = torch.zeros(x.shape, dtype=torch.int32)
    out = ctx.kernel(kernels.scatter_rows, narrow_index(base), positions, chip_values)
    return _widen(out, x.dtype)


def _int_division(ctx: LowerContext, x: Any, other: Any, rounding_mode: str | None) -> Any:
    if not isinstance(x, torch.Tensor) or x.dtype not in INDEX_DTYPES or rounding_mode not in ("floor", "trunc"):
        raise Unsupported("integer floor / trunc division")
    if isinstance(other, torch.Tensor):
        if other.dim() != 0 or _meta(other):
            raise Unsupported("division by a tensor")
        other = other.item()
    if not isinstance(other, int) or other == 0:
        raise Unsupported("division by a non-zero integer")
    op = "floor_divide" if rounding_mode == "floor" else "trunc_divide"
    out = ctx.kernel(kernels.index_arith, narrow_index(_vector_op(x)), op, int(other))
    return _widen(out, x.dtype).reshape(x.shape)


@registered("aten.div.Tensor_mode")
def div_mode(ctx: LowerContext, x: Any, other: Any, *, rounding_mode: str | None = None) -> Any:
    return _int_division(ctx, x, other, rounding_mode)


@registered("aten.floor_divide.default")
def floor_divide(ctx: LowerContext, x: Any, other: Any) -> Any:
    return _int_division(ctx, x, other, "floor")


@registered("aten._to_copy.default")
def to_copy(ctx: LowerContext, x: torch.Tensor, *, dtype: torch.dtype | None = None, **kwargs: Any) -> Any:
    """Casts between integer index tensors and floats (histc counts ids as floats); float casts as before."""
    ints = {x.dtype, dtype} & set(INDEX_DTYPES)
    if not ints or dtype is None or dtype == x.dtype or x.dim() == 0:
        return float_cast(ctx, x, dtype=dtype, **kwargs)
    if {x.dtype, dtype} - set(VALUE_DTYPES):
        raise Unsupported(f"cast {x.dtype} -> {dtype}")
    if x.dtype in INDEX_DTYPES and dtype in INDEX_DTYPES:
        return _widen(narrow_index(x), dtype)  # int64 <-> int32: the chip holds both as int32 (bookkeeping)
    chip_out = torch.int32 if dtype == torch.int64 else dtype
    out = ctx.kernel(kernels.index_arith, narrow_index(_vector_op(x)), "cast", out_dtype=numpy_dtype(chip_out))
    return _widen(out, dtype).reshape(x.shape)


# -- the experts -------------------------------------------------------------------------------------------
def _group_ends(offs: torch.Tensor, rows: int) -> Any:
    """The groups' end rows: real in functional mode, else tokens spread evenly over the groups."""
    groups = offs.shape[0]
    if _meta(offs):
        return [rows * (g + 1) // groups for g in range(groups)]
    return narrow_index(offs)


def _grouped(ctx: LowerContext, x: torch.Tensor, w: torch.Tensor, offs: Any, out_dtype: Any = None) -> Any:
    if not isinstance(offs, torch.Tensor) or offs.dim() != 1 or offs.dtype not in INDEX_DTYPES:
        raise Unsupported("grouped_mm without group offsets")
    if x.dim() != 2 or w.dim() != 3 or x.dtype not in KERNEL_DTYPES or w.dtype != x.dtype:
        raise Unsupported("grouped_mm of 2-D tokens by 3-D expert weights of one float dtype")
    odt = None if out_dtype in (None, x.dtype) else numpy_dtype(out_dtype)
    local = active_local_expert_rows()
    if local is not None and _meta(x):
        # an expert-parallel estimate (compiler/expert_parallel.py): the busiest rank's experts on the rows the
        # routing sends them; the graph's own [rows, N] result stays a shape for the ops after it
        n = w.shape[2]
        if sum(local):
            rank_x = torch.empty((sum(local), x.shape[1]), dtype=x.dtype, device="meta")
            rank_w = torch.empty((len(local), *w.shape[1:]), dtype=w.dtype, device="meta")
            ctx.kernel(kernels.grouped_matmul, rank_x, rank_w, list(accumulate(local)), out_dtype=odt)
        out = torch.empty((x.shape[0], n), dtype=out_dtype or x.dtype, device="meta")
        ctx.after_experts(int(w.shape[1]), int(w.shape[2]), out)  # tp x ep: the group's block all-reduce
        return out
    out = ctx.kernel(kernels.grouped_matmul, x, w, _group_ends(offs, x.shape[0]), out_dtype=odt)
    ctx.after_experts(int(w.shape[1]), int(w.shape[2]), out)
    return out


@registered("aten._grouped_mm.default")
def grouped_mm(
    ctx: LowerContext,
    x: torch.Tensor,
    w: torch.Tensor,
    offs: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
) -> Any:
    if bias is not None:
        raise Unsupported("grouped_mm with a bias")
    return _grouped(ctx, x, w, offs, out_dtype)


@registered("transformers.grouped_mm_fallback.default")
def grouped_mm_fallback(ctx: LowerContext, x: torch.Tensor, w: torch.Tensor, offs: torch.Tensor) -> Any:
    return _grouped(ctx, x, w, offs)
