"""`nki.isa` (current NKI, 0.2+): explicit-destination instructions, `dst` first."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.isa.alu import BINARY_OPS
from trnsim.nki import (
    emit_act2,
    emit_arith,
    emit_cumulative,
    emit_exp,
    emit_gather,
    emit_matmul,
    emit_movement,
    emit_mx,
    emit_predicated,
    emit_range_select,
    emit_ranks,
    emit_reduce,
    emit_reduce_fused,
    emit_select,
    emit_select_reduce,
)
from trnsim.nki.context import user_location
from trnsim.nki.isa_enums import (
    dge_mode,
    dma_engine,
    engine,
    get_nc_version,
    gpsimd_engine,
    matmul_perf_mode,
    nc_version,
    oob_mode,
    pattern_values,
    reduce_cmd,
    scalar_engine,
    tensor_engine,
    to_engine,
    unknown_engine,
    vector_engine,
)
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.versions import removed_dtype

__all__ = [
    "activation",
    "activation_reduce",
    "affine_select",
    "bn_aggr",
    "bn_stats",
    "dge_mode",
    "dma_copy",
    "dma_engine",
    "dma_transpose",
    "engine",
    "get_nc_sub_version",
    "get_nc_version",
    "gpsimd_engine",
    "iota",
    "matmul_perf_mode",
    "max8",
    "memset",
    "nc_find_index8",
    "nc_match_replace8",
    "nc_matmul",
    "nc_stream_shuffle",
    "nc_transpose",
    "nc_version",
    "nonzero_with_count",
    "oob_mode",
    "reciprocal",
    "reduce_cmd",
    "scalar_engine",
    "scalar_tensor_tensor",
    "select",
    "tensor_copy",
    "tensor_copy_predicated",
    "tensor_engine",
    "tensor_reduce",
    "tensor_scalar",
    "tensor_scalar_reduce",
    "tensor_tensor",
    "tensor_tensor_scan",
    "unknown_engine",
    "vector_engine",
]


def dma_copy(
    dst: NkiTensor,
    src: NkiTensor,
    priority: Any = None,
    oob_mode: Any = oob_mode.error,
    dge_mode: Any = dge_mode.unknown,
    engine: Any = engine.unknown,
    name: Any = None,
) -> None:
    emit_movement.dma_copy(dst, src)


def nc_matmul(
    dst: NkiTensor,
    stationary: NkiTensor,
    moving: NkiTensor,
    is_stationary_onezero: bool = False,
    is_moving_onezero: bool = False,
    is_transpose: bool = False,
    accumulate: bool | None = None,
    tile_position: Any = (),
    tile_size: Any = (),
    perf_mode: Any = matmul_perf_mode.none,
    name: Any = None,
) -> None:
    emit_matmul.nc_matmul(
        dst, stationary, moving, accumulate=accumulate, double_row=perf_mode == matmul_perf_mode.double_row
    )


def nc_transpose(dst: NkiTensor, data: NkiTensor, engine: Any = engine.unknown, name: Any = None) -> None:
    emit_matmul.nc_transpose(dst, data, engine=to_engine(engine))


def activation(
    dst: NkiTensor,
    op: Any,
    data: NkiTensor,
    bias: Any = None,
    scale: Any = 1.0,
    reduce_op: Any = None,
    reduce_res: Any = None,
    reduce_cmd: Any = reduce_cmd.idle,
    name: Any = None,
) -> None:
    emit_arith.activation(
        dst,
        op,
        data,
        bias=bias,
        scale=scale,
        reduce_op=reduce_op,
        reduce_res=reduce_res,
        accumulate_reduce=reduce_cmd in (reduce_cmd.reduce, reduce_cmd.load_reduce),
    )


def tensor_tensor(
    dst: NkiTensor, data1: NkiTensor, data2: NkiTensor, op: Any, engine: Any = engine.unknown, name: Any = None
) -> None:
    emit_arith.tensor_tensor(dst, data1, data2, op, engine=to_engine(engine))


def tensor_scalar(
    dst: NkiTensor,
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    reverse0: bool = False,
    op1: Any = None,
    operand1: Any = None,
    reverse1: bool = False,
    engine: Any = engine.unknown,
    name: Any = None,
) -> None:
    emit_arith.tensor_scalar(dst, data, op0, operand0, reverse0, op1, operand1, reverse1, engine=to_engine(engine))


def tensor_reduce(
    dst: NkiTensor, op: Any, data: NkiTensor, axis: Any, negate: bool = False, keepdims: bool = False, name: Any = None
) -> None:
    emit_reduce.tensor_reduce(dst, op, data, axis, negate=negate, keepdims=keepdims)


def tensor_copy(
    dst: NkiTensor, src: NkiTensor, engine: Any = engine.unknown, name: Any = None, dtype: Any = None
) -> None:
    removed_dtype("nki.isa.tensor_copy", dst, dtype)  # NKI Beta's dtype= (tutorials still write it)
    emit_movement.tensor_copy(dst, src, engine=to_engine(engine))


def memset(dst: NkiTensor, value: Any, engine: Any = engine.unknown, name: Any = None) -> None:
    emit_movement.memset(dst, value, engine=to_engine(engine))


def iota(dst: NkiTensor, pattern: Any, offset: int = 0, channel_multiplier: int = 0, name: Any = None) -> None:
    vals = pattern_values(tuple(dst.shape), pattern, offset, channel_multiplier)
    if vals.size != dst.size:
        raise ShapeMismatchError(
            f"iota pattern covers {vals.size // dst.shape[0]} elements per partition, dst has {dst.free_size()}",
            user_location(),
            rule="shape",
        )
    emit_select.iota(dst, vals.reshape(dst.shape))


_CMP_OPS = ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal")


def affine_select(
    dst: NkiTensor,
    pattern: Any,
    channel_multiplier: int,
    on_true_tile: NkiTensor,
    on_false_value: float,
    cmp_op: Any = None,
    offset: int = 0,
    name: Any = None,
) -> None:
    vals = pattern_values(tuple(dst.shape), pattern, offset, channel_multiplier).reshape(dst.shape)
    cmp = "equal" if cmp_op is None else getattr(cmp_op, "nki_name", None) or getattr(cmp_op, "__name__", cmp_op)
    if cmp not in _CMP_OPS:
        raise UsageError(
            f"affine_select cmp_op must be a comparison ({', '.join(_CMP_OPS)}), got {cmp_op!r}",
            user_location(),
            rule="op",
        )
    pred = BINARY_OPS[cmp](vals, np.zeros_like(vals)) != 0
    emit_select.affine_select(dst, pred, on_true_tile, float(on_false_value))


def select(
    dst: NkiTensor,
    predicate: NkiTensor,
    on_true: NkiTensor,
    on_false: Any,
    engine: Any = engine.unknown,
    name: Any = None,
) -> None:
    emit_select.select(dst, predicate, on_true, on_false, engine=to_engine(engine))


def bn_stats(dst: NkiTensor, data: NkiTensor, name: Any = None) -> None:
    emit_reduce.bn_stats(dst, data)


def bn_aggr(dst: NkiTensor, data: NkiTensor, name: Any = None) -> None:
    emit_reduce.bn_aggr(dst, data)


def reciprocal(dst: NkiTensor, data: NkiTensor, name: Any = None) -> None:
    emit_arith.reciprocal(dst, data)


def tensor_tensor_scan(
    dst: NkiTensor,
    data0: NkiTensor,
    data1: NkiTensor,
    initial: Any,
    op0: Any,
    op1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    name: Any = None,
) -> None:
    emit_arith.tensor_tensor_scan(dst, data0, data1, initial, op0, op1, reverse0, reverse1)


def scalar_tensor_tensor(
    dst: NkiTensor,
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    op1: Any,
    operand1: NkiTensor,
    reverse0: bool = False,
    reverse1: bool = False,
    name: Any = None,
) -> None:
    emit_arith.scalar_tensor_tensor(dst, data, op0, operand0, op1, operand1, reverse0, reverse1)


# -- between the cores of one HBM stack (nki/emit_ranks.py; run on several cores with trnsim.nki.run_ranks) --
def sendrecv(
    src: NkiTensor,
    dst: NkiTensor,
    send_to_rank: int,
    recv_from_rank: int,
    pipe_id: int,
    dma_engine: Any = dma_engine,
    name: Any = None,
) -> None:
    mode = "gpsimd_dma" if "gpsimd" in str(getattr(dma_engine, "name", dma_engine)) else "dma"
    emit_ranks.sendrecv(src, dst, send_to_rank, recv_from_rank, pipe_id, mode, None, user_location())


def core_barrier(data: NkiTensor, cores: Any, engine: Any = engine.gpsimd, name: Any = None) -> None:
    emit_ranks.core_barrier(data, cores, to_engine(engine), user_location())


__all__ += ["core_barrier", "sendrecv"]


def nc_matmul_mx(
    dst: NkiTensor,
    stationary: NkiTensor,
    moving: NkiTensor,
    stationary_scale: NkiTensor,
    moving_scale: NkiTensor,
    tile_position: Any = None,
    tile_size: Any = None,
    accumulate: bool | None = None,
    name: Any = None,
) -> None:
    """NC-v4 MXFP8/MXFP4 matmul; row tiling (tile_position/tile_size) places the tile, it changes no result."""
    emit_mx.nc_matmul_mx(dst, stationary, moving, stationary_scale, moving_scale, accumulate=accumulate)


def quantize_mx(dst: NkiTensor, src: NkiTensor, dst_scale: NkiTensor, name: Any = None) -> None:
    emit_mx.quantize_mx(dst, src, dst_scale)


__all__ += ["nc_matmul_mx", "quantize_mx"]


def exponential(
    dst: NkiTensor,
    src: NkiTensor,
    max_value: Any = 0.0,
    reduce_res: NkiTensor | None = None,
    reduce_cmd: Any = reduce_cmd.idle,
    reduce_init: Any = 0.0,
    name: Any = None,
) -> None:
    emit_exp.exponential(
        dst,
        src,
        max_value=max_value,
        reduce_res=reduce_res,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
        reduce_init=reduce_init,
    )


__all__ += ["exponential"]


def activate2(
    dst: NkiTensor,
    op: Any,
    data: NkiTensor,
    imm0: Any,
    imm1: Any,
    op0: Any,
    op1: Any,
    relu_param: Any = 0.0,
    reverse0: bool = False,
    reverse1: bool = False,
    reduce_op: Any = None,
    reduce_res: NkiTensor | None = None,
    reduce_cmd: Any = reduce_cmd.idle,
    name: Any = None,
) -> None:
    emit_act2.activate2(
        dst,
        op,
        data,
        imm0,
        imm1,
        op0,
        op1,
        relu_param=relu_param,
        reverse0=reverse0,
        reverse1=reverse1,
        reduce_op=reduce_op,
        reduce_res=reduce_res,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
    )


__all__ += ["activate2"]


def tensor_scalar_cumulative(
    dst: NkiTensor,
    src: NkiTensor,
    op0: Any,
    op1: Any,
    imm0: Any,
    imm1: Any = None,
    reduce_cmd: Any = reduce_cmd.reset_reduce,
    name: Any = None,
) -> None:
    emit_cumulative.tensor_scalar_cumulative(
        dst,
        src,
        op0,
        op1,
        imm0,
        imm1=imm1,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
    )


__all__ += ["tensor_scalar_cumulative"]


def select_reduce(
    dst: NkiTensor,
    predicate: NkiTensor,
    on_true: NkiTensor,
    on_false: Any,
    reduce_res: NkiTensor | None = None,
    reduce_cmd: Any = reduce_cmd.idle,
    reduce_op: Any = "maximum",
    reverse_pred: bool = False,
    name: Any = None,
) -> None:
    emit_select_reduce.select_reduce(
        dst,
        predicate,
        on_true,
        on_false,
        reduce_res=reduce_res,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
        reduce_op=reduce_op,
        reverse_pred=reverse_pred,
    )


__all__ += ["select_reduce"]

_FP32_MIN = float(np.finfo(np.float32).min)  # range_select's only legal on_false_value


def range_select(
    dst: NkiTensor,
    on_true_tile: NkiTensor,
    comp_op0: Any,
    comp_op1: Any,
    bound0: NkiTensor,
    bound1: NkiTensor,
    reduce_cmd: Any = reduce_cmd.reset_reduce,
    reduce_res: NkiTensor | None = None,
    reduce_op: Any = "maximum",
    range_start: Any = 0,
    on_false_value: Any = _FP32_MIN,
    name: Any = None,
) -> None:
    emit_range_select.range_select(
        dst,
        on_true_tile,
        comp_op0,
        comp_op1,
        bound0,
        bound1,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
        reduce_res=reduce_res,
        reduce_op=reduce_op,
        range_start=range_start,
        on_false_value=on_false_value,
    )


__all__ += ["range_select"]


def nc_n_gather(dst: NkiTensor, data: NkiTensor, indices: NkiTensor, name: Any = None) -> None:
    emit_gather.nc_n_gather(dst, data, indices)


__all__ += ["nc_n_gather"]


def sequence_bounds(dst: NkiTensor, segment_ids: NkiTensor, name: Any = None) -> None:
    emit_gather.sequence_bounds(dst, segment_ids)


__all__ += ["sequence_bounds"]


def activation_reduce(
    dst: NkiTensor,
    op: Any,
    data: NkiTensor,
    reduce_op: Any,
    reduce_res: NkiTensor,
    bias: Any = None,
    scale: Any = 1.0,
    name: Any = None,
) -> None:
    """activation with its free-axis reduction into reduce_res[P, 1] (the activation record's reduce form)."""
    emit_arith.activation(dst, op, data, bias=bias, scale=scale, reduce_op=reduce_op, reduce_res=reduce_res)


def tensor_scalar_reduce(
    dst: NkiTensor,
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    reduce_op: Any,
    reduce_res: NkiTensor | None = None,
    reverse0: bool = False,
    reduce_cmd: Any = reduce_cmd.reset_reduce,
    reduce_init: Any = None,
    reduce_res_negate: bool = False,
    name: Any = None,
) -> None:
    emit_reduce_fused.tensor_scalar_reduce(
        dst,
        data,
        op0,
        operand0,
        reduce_op,
        reduce_res=reduce_res,
        reverse0=reverse0,
        reduce_cmd=reduce_cmd.name if hasattr(reduce_cmd, "name") else str(reduce_cmd),
        reduce_init=reduce_init,
        reduce_res_negate=reduce_res_negate,
    )


def max8(dst: NkiTensor, src: NkiTensor, name: Any = None) -> None:
    emit_reduce_fused.max8(dst, src)


def get_nc_sub_version() -> int:
    """The NeuronCore's sub-version within its generation (0 for the chips trnsim models: no revisions)."""
    get_nc_version()  # the same context rules as get_nc_version
    return 0


def tensor_copy_predicated(
    dst: NkiTensor, src: Any, predicate: NkiTensor, reverse_pred: bool = False, name: Any = None
) -> None:
    emit_predicated.tensor_copy_predicated(dst, src, predicate, reverse_pred=reverse_pred)


def nonzero_with_count(
    dst: NkiTensor, src: NkiTensor, index_offset: int = 0, padding_val: Any = -1, name: Any = None
) -> None:
    emit_predicated.nonzero_with_count(dst, src, index_offset=index_offset, padding_val=padding_val)


def nc_stream_shuffle(dst: NkiTensor, src: NkiTensor, shuffle_mask: Any, name: Any = None) -> None:
    emit_predicated.nc_stream_shuffle(dst, src, shuffle_mask)


def nc_find_index8(dst: NkiTensor, data: NkiTensor, vals: NkiTensor, name: Any = None) -> None:
    emit_reduce_fused.nc_find_index8(dst, data, vals)


def nc_match_replace8(
    dst: NkiTensor, data: NkiTensor, vals: NkiTensor, imm: float, dst_idx: NkiTensor | None = None, name: Any = None
) -> None:
    emit_reduce_fused.nc_match_replace8(dst, data, vals, imm, dst_idx=dst_idx)


# dma_transpose's default permutation by rank (NKI docs, nki.isa.dma_transpose)
_DMA_TRANSPOSE_AXES = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}
_DMA_TRANSPOSE_MAX_LAST = 128  # src.shape[-1] <= 128 for the DGE transposes (NKI docs)
_DGE_UNKNOWN = dge_mode.unknown  # the parameter of the same name hides the enum inside dma_transpose


def dma_transpose(
    dst: NkiTensor,
    src: NkiTensor,
    axes: Any = None,
    priority: Any = None,
    dge_mode: Any = dge_mode.unknown,
    oob_mode: Any = oob_mode.error,
    name: Any = None,
) -> None:
    """dst = src with its axes permuted, moved by one DMA whose access pattern does the transpose.

    Its descriptors are single elements (the transposing walk), so its time is the DMA model's for that
    pattern, as for nl.load_transpose2d.
    """
    loc = user_location()
    if not isinstance(src, NkiTensor) or not isinstance(dst, NkiTensor):
        raise UsageError("nisa.dma_transpose takes tensors dst and src", loc)
    perm = tuple(axes) if axes is not None else _DMA_TRANSPOSE_AXES.get(src.ndim)
    if perm is None or sorted(perm) != list(range(src.ndim)):
        raise UsageError(
            f"nisa.dma_transpose: src {src!r} needs axes that permute its {src.ndim} dims (2-4 dims by default)", loc
        )
    dge = dge_mode not in (None, _DGE_UNKNOWN)  # the hwdge/swdge transposes have their own limits (NKI docs)
    if dge and src.dtype.itemsize != 2:
        raise UsageError(f"nisa.dma_transpose with a DGE mode moves 2-byte dtypes only, got {src!r}", loc, rule="dtype")
    if dge and src.shape[-1] > _DMA_TRANSPOSE_MAX_LAST:
        raise UsageError(
            f"nisa.dma_transpose: src's last dim must be <= {_DMA_TRANSPOSE_MAX_LAST}, got {src!r}", loc, rule="shape"
        )
    want = tuple(src.shape[a] for a in perm)
    if tuple(dst.shape) != want:
        raise ShapeMismatchError(
            f"nisa.dma_transpose: dst must have the transposed shape {list(want)} of src, got {dst!r}",
            loc,
            rule="shape",
        )
    # index arrays: element [i_0, i_1, ...] of the view is src[...] with src's dim perm[k] indexed by i_k
    grids = np.ix_(*[np.arange(n) for n in want])
    index: list[Any] = [None] * src.ndim
    for k, a in enumerate(perm):
        index[a] = grids[k]
    emit_movement.dma_copy(dst, src[tuple(index)], location=loc)
