"""`neuronxcc.nki.isa` (legacy NKI): functional instructions that return a new tile, with `mask=`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import UsageError
from trnsim.isa.instructions.nc_matmul import check_matmul_limits
from trnsim.isa.opcodes import Engine
from trnsim.nki import (
    emit_arith,
    emit_dma_compute,
    emit_matmul,
    emit_movement,
    emit_reduce,
    emit_reduce_fused,
    emit_select,
)
from trnsim.nki.context import current, user_location
from trnsim.nki.isa_enums import (
    dge_mode,
    dma_engine,
    engine,
    get_nc_version,
    gpsimd_engine,
    matmul_perf_mode,
    nc_version,
    oob_mode,
    reduce_cmd,
    scalar_engine,
    tensor_engine,
    to_engine,
    unknown_engine,
    vector_engine,
)
from trnsim.nki.isa_legacy_returns import (  # names added after NKI Beta 1, and Beta names kept in NKI 0.6
    dma_transpose,
    dropout,
    local_gather,
    nc_find_index8,
    nc_match_replace8,
    nc_stream_shuffle,
    range_select,
    select_reduce,
    sequence_bounds,
    tensor_copy_predicated,
    tensor_partition_reduce,
    tensor_scalar_cumulative,
)
from trnsim.nki.language_impl import _axes
from trnsim.nki.operands import require_tensor
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.tiles import _mark_fresh, new_tensor
from trnsim.sim.memory import MemoryKind

__all__ = [
    "activation",
    "activation_reduce",
    "affine_select",
    "bn_aggr",
    "bn_stats",
    "dge_mode",
    "dma_copy",
    "dma_engine",
    "engine",
    "get_nc_version",
    "gpsimd_engine",
    "iota",
    "matmul_perf_mode",
    "max8",
    "memset",
    "nc_matmul",
    "nc_transpose",
    "nc_version",
    "oob_mode",
    "reciprocal",
    "reduce_cmd",
    "scalar_engine",
    "scalar_tensor_tensor",
    "tensor_copy",
    "tensor_engine",
    "tensor_reduce",
    "tensor_scalar",
    "tensor_scalar_reduce",
    "tensor_tensor",
    "tensor_tensor_scan",
    "unknown_engine",
    "vector_engine",
]


def _fresh(shape: Any, dtype: Any, buffer: MemoryKind = MemoryKind.SBUF) -> NkiTensor:
    return new_tensor(tuple(shape), dtype, buffer, location=user_location())


_OOB_SKIP = oob_mode.skip  # dma_copy's parameter of the same name hides the enum


def _done(t: NkiTensor) -> NkiTensor:
    return _mark_fresh(current(), t)


def _tile(x: Any, what: str) -> NkiTensor:
    """The tile argument `x`, checked before its shape sizes the result."""
    return require_tensor(x, what, user_location())


def dma_copy(
    *,
    dst: NkiTensor,
    src: NkiTensor,
    mask: Any = None,
    dst_rmw_op: Any = None,
    oob_mode: Any = None,
    dge_mode: Any = None,
    **_: Any,
) -> None:
    skip = oob_mode is _OOB_SKIP
    if dst_rmw_op is not None:  # NKI 0.2 docs: dst = dst + src ("only np.add"; nisa.dma_compute since 0.3.0)
        if mask is not None or skip:
            raise UsageError(
                "nisa.dma_copy with dst_rmw_op takes no mask and only oob_mode=oob_mode.error (NKI docs)",
                user_location(),
            )
        emit_dma_compute.dma_compute(dst, [src, dst], dst_rmw_op)
        return
    emit_movement.dma_copy(dst, src, mask=mask, oob_skip=skip)


def nc_matmul(
    stationary: NkiTensor,
    moving: NkiTensor,
    *,
    is_stationary_onezero: bool = False,
    is_moving_onezero: bool = False,
    is_transpose: bool = False,
    tile_position: Any = (),
    tile_size: Any = (),
    mask: Any = None,
    perf_mode: Any = None,
    **_: Any,
) -> NkiTensor:
    # "double_row_gen3": the legacy string for it (NeuronCore-v3's FP8 double-row mode; the NKI docs' own test)
    double = perf_mode in (matmul_perf_mode.double_row, "double_row", "double_row_gen3")
    stationary = _tile(stationary, "nc_matmul stationary")
    moving = _tile(moving, "nc_matmul moving")
    m = stationary.shape[-1] if double else stationary.free_size()
    n = moving.shape[-1] if double else moving.free_size()
    check_matmul_limits(current().machine.spec.core, stationary.partition_size(), m, n, user_location())
    out = _fresh((m, n), dtypes.float32, MemoryKind.PSUM)
    emit_matmul.nc_matmul(out, stationary, moving, accumulate=False, double_row=double, mask=mask)
    return _done(out)


def nc_transpose(
    data: NkiTensor, *, engine: Any = engine.unknown, mask: Any = None, dtype: Any = None, **_: Any
) -> NkiTensor:
    data = _tile(data, "nc_transpose data")
    eng = to_engine(engine)
    if eng is None:  # the compiler picks VectorE for tiles within its 32x32 limit
        eng = Engine.VECTOR if data.partition_size() <= 32 and data.free_size() <= 32 else Engine.TENSOR
    buf = MemoryKind.PSUM if eng is Engine.TENSOR else MemoryKind.SBUF
    out = _fresh((data.free_size(), data.partition_size()), dtype or data.dtype, buf)
    emit_matmul.nc_transpose(out, data, engine=eng, mask=mask)
    return _done(out)


def activation(
    op: Any,
    data: NkiTensor,
    *,
    bias: Any = None,
    scale: Any = 1.0,
    reduce_op: Any = None,
    reduce_res: Any = None,
    reduce_cmd: Any = None,
    mask: Any = None,
    dtype: Any = None,
    **_: Any,
) -> NkiTensor:
    data = _tile(data, "activation data")
    out = _fresh(data.shape, dtype or data.dtype)
    emit_arith.activation(out, op, data, bias=bias, scale=scale, reduce_op=reduce_op, reduce_res=reduce_res, mask=mask)
    return _done(out)


def activation_reduce(
    op: Any,
    data: NkiTensor,
    *,
    reduce_op: Any,
    reduce_res: NkiTensor,
    bias: Any = None,
    scale: Any = 1.0,
    mask: Any = None,
    dtype: Any = None,
    **_: Any,
) -> NkiTensor:
    return activation(
        op, data, bias=bias, scale=scale, reduce_op=reduce_op, reduce_res=reduce_res, mask=mask, dtype=dtype
    )


def tensor_tensor(
    data1: NkiTensor,
    data2: NkiTensor,
    op: Any,
    *,
    dtype: Any = None,
    mask: Any = None,
    engine: Any = engine.unknown,
    **_: Any,
) -> NkiTensor:
    data1, data2 = _tile(data1, "tensor_tensor data1"), _tile(data2, "tensor_tensor data2")
    dt = dtype or max((data1.dtype, data2.dtype), key=lambda d: (dtypes.is_float(d), d.itemsize))
    out = _fresh(data1.shape, dt)
    emit_arith.tensor_tensor(out, data1, data2, op, engine=to_engine(engine), mask=mask)
    return _done(out)


def tensor_scalar(
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    reverse0: bool = False,
    op1: Any = None,
    operand1: Any = None,
    reverse1: bool = False,
    *,
    dtype: Any = None,
    mask: Any = None,
    engine: Any = engine.unknown,
    **_: Any,
) -> NkiTensor:
    data = _tile(data, "tensor_scalar data")
    out = _fresh(data.shape, dtype or data.dtype)
    emit_arith.tensor_scalar(
        out, data, op0, operand0, reverse0, op1, operand1, reverse1, engine=to_engine(engine), mask=mask
    )
    return _done(out)


def tensor_reduce(
    op: Any,
    data: NkiTensor,
    axis: Any,
    *,
    mask: Any = None,
    dtype: Any = None,
    negate: bool = False,
    keepdims: bool = False,
    **_: Any,
) -> NkiTensor:
    data = _tile(data, "tensor_reduce data")
    axes = _axes(data, axis, user_location())
    shape = tuple(1 if d in axes else s for d, s in enumerate(data.shape) if keepdims or d not in axes)
    out = _fresh(shape if len(shape) > 1 else (*shape, 1), dtype or data.dtype)
    emit_reduce.tensor_reduce(out, op, data, axes, negate=negate, keepdims=keepdims, mask=mask)
    return _done(out)


def tensor_copy(
    src: NkiTensor, *, mask: Any = None, dtype: Any = None, engine: Any = engine.unknown, **_: Any
) -> NkiTensor:
    src = _tile(src, "tensor_copy src")
    out = _fresh(src.shape, dtype or src.dtype)
    emit_movement.tensor_copy(out, src, engine=to_engine(engine), mask=mask)
    return _done(out)


def memset(
    shape: Any, value: Any, dtype: Any, *, mask: Any = None, engine: Any = engine.unknown, **_: Any
) -> NkiTensor:
    out = _fresh(shape, dtype)
    emit_movement.memset(out, value, engine=to_engine(engine), mask=mask)
    return _done(out)


def iota(expr: Any, dtype: Any, *, mask: Any = None, **_: Any) -> NkiTensor:
    vals = np.asarray(expr)
    if vals.ndim == 0 or vals.dtype.kind not in "biuf":
        raise UsageError(
            f"iota takes an index expression built from nl.arange/nl.mgrid, got {type(expr).__name__}",
            user_location(),
        )
    shape = vals.shape if vals.ndim >= 2 else (*vals.shape, 1)
    out = _fresh(shape, dtype)
    emit_select.iota(out, vals.reshape(shape), mask=mask)
    return _done(out)


def affine_select(
    pred: Any, on_true_tile: NkiTensor, on_false_value: float, *, mask: Any = None, dtype: Any = None, **_: Any
) -> NkiTensor:
    on_true_tile = _tile(on_true_tile, "affine_select on_true_tile")
    out = _fresh(on_true_tile.shape, dtype or on_true_tile.dtype)
    emit_select.affine_select(out, np.asarray(pred) > 0, on_true_tile, float(on_false_value), mask=mask)
    return _done(out)


def bn_stats(data: NkiTensor, *, mask: Any = None, dtype: Any = None, **_: Any) -> NkiTensor:
    data = _tile(data, "bn_stats data")
    out = _fresh((data.partition_size(), 6), dtype or data.dtype)
    emit_reduce.bn_stats(out, data)
    return _done(out)


def bn_aggr(data: NkiTensor, *, mask: Any = None, dtype: Any = None, **_: Any) -> NkiTensor:
    data = _tile(data, "bn_aggr data")
    out = _fresh((data.partition_size(), 2), dtype or data.dtype)
    emit_reduce.bn_aggr(out, data)
    return _done(out)


def reciprocal(data: NkiTensor, *, dtype: Any = None, mask: Any = None, **_: Any) -> NkiTensor:
    data = _tile(data, "reciprocal data")
    out = _fresh(data.shape, dtype or data.dtype)
    emit_arith.reciprocal(out, data, mask=mask)
    return _done(out)


def tensor_tensor_scan(
    data0: NkiTensor,
    data1: NkiTensor,
    initial: Any,
    op0: Any,
    op1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    *,
    dtype: Any = None,
    mask: Any = None,
    **_: Any,
) -> NkiTensor:
    data0, data1 = _tile(data0, "tensor_tensor_scan data0"), _tile(data1, "tensor_tensor_scan data1")
    dt = dtype or max((data0.dtype, data1.dtype), key=lambda d: (dtypes.is_float(d), d.itemsize))
    out = _fresh(data0.shape, dt)
    emit_arith.tensor_tensor_scan(out, data0, data1, initial, op0, op1, reverse0, reverse1, mask=mask)
    return _done(out)


def scalar_tensor_tensor(
    *,
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    op1: Any,
    operand1: NkiTensor,
    reverse0: bool = False,
    reverse1: bool = False,
    dtype: Any = None,
    mask: Any = None,
    **_: Any,
) -> NkiTensor:
    data, operand1 = _tile(data, "scalar_tensor_tensor data"), _tile(operand1, "scalar_tensor_tensor operand1")
    dt = dtype or max((data.dtype, operand1.dtype), key=lambda d: (dtypes.is_float(d), d.itemsize))
    out = _fresh(data.shape, dt)
    emit_arith.scalar_tensor_tensor(out, data, op0, operand0, op1, operand1, reverse0, reverse1, mask=mask)
    return _done(out)


def tensor_scalar_reduce(
    *,
    data: NkiTensor,
    op0: Any,
    operand0: Any,
    reduce_op: Any,
    reduce_res: NkiTensor,
    reverse0: bool = False,
    dtype: Any = None,
    mask: Any = None,
    **_: Any,
) -> NkiTensor:
    data = _tile(data, "tensor_scalar_reduce data")
    out = _fresh(data.shape, dtype or data.dtype)
    emit_reduce_fused.tensor_scalar_reduce(
        out, data, op0, operand0, reduce_op, reduce_res=reduce_res, reverse0=reverse0
    )
    return _done(out)


def max8(*, src: NkiTensor, dtype: Any = None, **_: Any) -> NkiTensor:
    src = _tile(src, "max8 src")
    out = _fresh((src.partition_size(), 8), dtype or src.dtype)
    emit_reduce_fused.max8(out, src)
    return _done(out)


__all__ += [
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


def _refuse_dst(fn: Callable[..., NkiTensor]) -> Callable[..., NkiTensor]:
    """A legacy instruction returns a new tile and takes extra keywords (`**_`) for the ones later releases added;
    `dst=` among them would be dropped, leaving the caller's tensor unwritten: a silent wrong answer, so refuse it."""

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> NkiTensor:
        if "dst" in kwargs:
            raise UsageError(
                f"neuronxcc.nki.isa.{fn.__name__}(dst=...): the legacy instruction returns its result as a new tile "
                f"and has no dst parameter; dst= is the current form: call nki.isa.{fn.__name__}(dst=..., ...) "
                "(import nki.isa), or use the returned tile",
                user_location(),
            )
        return fn(*args, **kwargs)

    return checked


for _name in [n for n in __all__ if n != "dma_copy"]:
    _fn = globals()[_name]
    if callable(_fn) and getattr(_fn, "__module__", None) == __name__ and not isinstance(_fn, type):
        globals()[_name] = _refuse_dst(_fn)
