"""`neuronxcc.nki.isa` names added after NKI Beta 1 (NKI docs' own examples, nki/test/test_nki_isa_*.py).

The legacy surface returns a new tile; these instructions came late enough that some of them were written with
an explicit `dst=` already (tensor_copy_predicated, select_reduce, tensor_scalar_cumulative, nc_stream_shuffle):
those take the current signature unchanged. The others allocate their result as the rest of legacy_isa does and
call the current wrapper with it.
"""

from __future__ import annotations

from typing import Any

from trnsim import dtypes
from trnsim.errors import UsageError
from trnsim.nki import emit_movement, emit_partition, emit_random, isa_movement, isa_reduce, isa_select
from trnsim.nki.context import current, user_location
from trnsim.nki.isa_arith import tensor_scalar_cumulative
from trnsim.nki.isa_enums import dge_mode as _dge_mode
from trnsim.nki.isa_enums import oob_mode as _oob_mode
from trnsim.nki.isa_enums import reduce_cmd as _reduce_cmd
from trnsim.nki.isa_select import _FP32_MIN, nc_stream_shuffle, select_reduce, tensor_copy_predicated
from trnsim.nki.operands import require_tensor
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.tiles import _mark_fresh, new_tensor
from trnsim.sim.memory import MemoryKind

__all__ = [
    "dma_transpose",
    "dropout",
    "local_gather",
    "nc_find_index8",
    "nc_match_replace8",
    "nc_stream_shuffle",
    "range_select",
    "select_reduce",
    "sequence_bounds",
    "tensor_copy_predicated",
    "tensor_partition_reduce",
    "tensor_scalar_cumulative",
]


def _fresh(shape: Any, dtype: Any) -> NkiTensor:
    return new_tensor(tuple(shape), dtype, MemoryKind.SBUF, location=user_location())


def _tile(x: Any, what: str) -> NkiTensor:
    return require_tensor(x, what, user_location())


def _no_mask(mask: Any, what: str) -> None:
    if mask is not None:
        raise UsageError(f"{what}: mask= is not supported; slice the tiles instead", user_location())


def dma_transpose(
    src: NkiTensor,
    *,
    axes: Any = None,
    dge_mode: Any = _dge_mode.unknown,
    oob_mode: Any = _oob_mode.error,
    mask: Any = None,
    dtype: Any = None,
    **_: Any,
) -> NkiTensor:
    """A new SBUF tile: `src` with its axes permuted (reversed by default)."""
    _no_mask(mask, "dma_transpose")
    src = _tile(src, "dma_transpose src")
    perm = tuple(axes) if axes is not None else tuple(reversed(range(src.ndim)))
    if sorted(perm) != list(range(src.ndim)):
        raise UsageError(
            f"nisa.dma_transpose: axes {axes!r} do not permute the {src.ndim} dims of {src!r}", user_location()
        )
    out = _fresh([src.shape[i] for i in perm], dtype or src.dtype)
    isa_movement.dma_transpose(out, src, axes=axes, dge_mode=dge_mode, oob_mode=oob_mode)
    return _mark_fresh(current(), out)


def nc_find_index8(data: NkiTensor, vals: NkiTensor, *, mask: Any = None, dtype: Any = None, **_: Any) -> NkiTensor:
    """A new [P, 8] uint32 tile: where each of the 8 values of `vals` first occurs in its row of `data`."""
    _no_mask(mask, "nc_find_index8")
    data = _tile(data, "nc_find_index8 data")
    out = _fresh((data.partition_size(), 8), dtype or "uint32")
    isa_reduce.nc_find_index8(out, data, _tile(vals, "nc_find_index8 vals"))
    return _mark_fresh(current(), out)


def nc_match_replace8(
    data: NkiTensor,
    vals: NkiTensor,
    imm: float,
    *,
    dst_idx: NkiTensor | None = None,
    mask: Any = None,
    dtype: Any = None,
    **_: Any,
) -> NkiTensor:
    """A new tile like `data` with the first occurrence of each of the 8 `vals` per row replaced by `imm`."""
    _no_mask(mask, "nc_match_replace8")
    data = _tile(data, "nc_match_replace8 data")
    out = _fresh(data.shape, dtype or data.dtype)
    isa_reduce.nc_match_replace8(out, data, _tile(vals, "nc_match_replace8 vals"), imm, dst_idx=dst_idx)
    return _mark_fresh(current(), out)


def range_select(
    on_true_tile: NkiTensor,
    comp_op0: Any,
    comp_op1: Any,
    bound0: NkiTensor,
    bound1: NkiTensor,
    reduce_cmd: Any = _reduce_cmd.reset_reduce,
    reduce_res: NkiTensor | None = None,
    reduce_op: Any = "maximum",
    range_start: Any = 0,
    on_false_value: Any = _FP32_MIN,
    *,
    mask: Any = None,
    dtype: Any = None,
    **_: Any,
) -> NkiTensor:
    """A new tile like `on_true_tile`: its elements whose column index lies in the bounds, else on_false_value."""
    _no_mask(mask, "range_select")
    on_true = _tile(on_true_tile, "range_select on_true_tile")
    out = _fresh(on_true.shape, dtype or on_true.dtype)
    isa_select.range_select(
        out,
        on_true,
        comp_op0,
        comp_op1,
        bound0,
        bound1,
        reduce_cmd=reduce_cmd,
        reduce_res=reduce_res,
        reduce_op=reduce_op,
        range_start=range_start,
        on_false_value=on_false_value,
    )
    return _mark_fresh(current(), out)


def sequence_bounds(segment_ids: NkiTensor, *, mask: Any = None, dtype: Any = None, **_: Any) -> NkiTensor:
    """A new [P, 2, N] tile: each element's segment start and end index (segment_ids is [P, N])."""
    _no_mask(mask, "sequence_bounds")
    ids = _tile(segment_ids, "sequence_bounds segment_ids")
    if ids.ndim != 2:
        raise UsageError(f"nisa.sequence_bounds: segment_ids must be [P, N], got {ids!r}", user_location())
    out = _fresh((ids.shape[0], 2, ids.shape[1]), dtype or ids.dtype)
    isa_select.sequence_bounds(out, ids)
    return _mark_fresh(current(), out)


# -- NKI Beta names that NKI 0.6 keeps with explicit destinations (nki/isa_random.py, nki/isa_partition.py) --
def dropout(data: NkiTensor, prob: Any, *, mask: Any = None, dtype: Any = None, **_: Any) -> NkiTensor:
    """A new tile: data with each element zeroed with probability prob, in `dtype` (default data's)."""
    _no_mask(mask, "dropout")
    data = _tile(data, "dropout data")
    out = _fresh(data.shape, data.dtype)
    emit_random.dropout(out, data, prob)
    if dtype is None or dtypes.resolve(dtype) == data.dtype:
        return _mark_fresh(current(), out)
    cast = _fresh(data.shape, dtype)
    emit_movement.tensor_copy(cast, out)
    return _mark_fresh(current(), cast)


def tensor_partition_reduce(op: Any, data: NkiTensor, *, mask: Any = None, dtype: Any = None, **_: Any) -> NkiTensor:
    """A new [1, F...] tile: op over the partitions of data."""
    _no_mask(mask, "tensor_partition_reduce")
    data = _tile(data, "tensor_partition_reduce data")
    out = _fresh((1, *data.shape[1:]), dtype or data.dtype)
    emit_partition.tensor_partition_reduce(out, op, data)
    return _mark_fresh(current(), out)


def local_gather(
    src_buffer: NkiTensor,
    index: NkiTensor,
    num_elem_per_idx: int = 1,
    num_valid_indices: Any = None,
    *,
    mask: Any = None,
    **_: Any,
) -> NkiTensor:
    """A new tile of each 16-partition group's gathered runs: [P, *index free dims, 16, E] for the default
    index count (the docs example's [128, 4, 16, 4]), else [P, num_valid_indices, E]."""
    _no_mask(mask, "local_gather")
    src = _tile(src_buffer, "local_gather src_buffer")
    idx = _tile(index, "local_gather index")
    e = int(num_elem_per_idx)
    default = idx.size // max(1, idx.partition_size() // 16)
    valid = default if num_valid_indices is None else int(num_valid_indices)
    p = src.partition_size()
    shape = (p, *idx.shape[1:], 16, e) if valid == default else (p, valid, e)
    out = _fresh(shape, src.dtype)
    emit_partition.local_gather(out, src, idx, e, num_valid_indices)
    return _mark_fresh(current(), out)
