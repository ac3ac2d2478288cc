"""nki.language functions that build new tiles (both API styles share them).

Each legacy-style call allocates a fresh tile (tiles.py) and issues its instructions into it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.isa.instructions.nc_matmul import check_matmul_limits
from trnsim.isa.opcodes import Engine
from trnsim.nki import emit_arith, emit_matmul, emit_movement, emit_reduce, emit_select
from trnsim.nki.context import current, user_location
from trnsim.nki.operands import read_f32, reduce_axes, require_tensor
from trnsim.nki.tensor import NkiTensor
from trnsim.nki.tensor_ops import TileLanguage, install_tile_language
from trnsim.nki.tiles import _dtype, _mark_fresh, _retarget, _same_view, new_tensor
from trnsim.sim.memory import MemoryKind


def assign(dst: NkiTensor, value: Any) -> None:
    """`dst[...] = value`: a tile (retargeted or copied), a number (memset), or a store to HBM."""
    ctx = current()
    loc = user_location()
    if isinstance(value, NkiTensor):
        if _same_view(value, dst):
            return  # `t[i] += x` writes back the view it already updated
        if MemoryKind.HBM in (dst.buffer, value.buffer):
            _check_store_shape(dst, value, loc)
        if _retarget(ctx, dst, value, accumulate=False):
            return
        if dst.buffer is MemoryKind.HBM or value.buffer is MemoryKind.HBM:
            store(dst, value)
        else:
            emit_movement.tensor_copy(dst, value, location=loc)
        return
    if isinstance(value, int | float | np.number):
        emit_movement.memset(dst, float(value), location=loc)
        return
    raise UsageError(f"cannot assign a {type(value).__name__} to an NKI tensor", loc)


def accumulate(dst: NkiTensor, value: Any) -> None:
    """`psum += nl.matmul(...)`: accumulate into PSUM (or add elementwise for other tiles)."""
    ctx = current()
    if isinstance(value, NkiTensor) and _retarget(ctx, dst, value, accumulate=True):
        return
    if isinstance(value, NkiTensor) and value.buffer is MemoryKind.PSUM and dst.buffer is MemoryKind.PSUM:
        value = copy(value)
    elementwise_binary("add", dst, value, out=dst)


# -- memory ------------------------------------------------------------------------------------------
def load(src: NkiTensor, mask: Any = None, dtype: Any = None) -> NkiTensor:
    ctx = current()
    loc = user_location()
    if not isinstance(src, NkiTensor):
        raise UsageError(f"nl.load takes an HBM tensor, got {type(src).__name__}", loc)
    tile = new_tensor(src.shape, dtype or src.dtype, MemoryKind.SBUF, location=loc)
    emit_movement.dma_copy(tile, src, mask=mask, location=loc)
    return _mark_fresh(ctx, tile)


def _check_store_shape(dst: NkiTensor, value: NkiTensor, loc: str) -> None:
    """A store's tile and destination must have the same shape (size-1 dims aside, e.g. [128, 1] -> [128])."""
    if tuple(s for s in dst.shape if s != 1) != tuple(s for s in value.shape if s != 1):
        raise ShapeMismatchError(
            f"store of a {list(value.shape)} tile into a {list(dst.shape)} destination: shapes must match",
            loc,
            rule="store-shape",
        )


def store(dst: NkiTensor, value: Any, mask: Any = None) -> None:
    loc = user_location()
    dst = require_tensor(dst, "nl.store dst", loc)
    if not isinstance(value, NkiTensor):
        raise UsageError(f"nl.store takes a tile value, got {type(value).__name__}", loc)
    _check_store_shape(dst, value, loc)
    if value.buffer is MemoryKind.PSUM:  # DMA cannot read PSUM: stage through SBUF, as the compiler does
        value = copy(value)
    emit_movement.dma_copy(dst, value, mask=mask, location=loc)


def copy(src: NkiTensor, dtype: Any = None, mask: Any = None) -> NkiTensor:
    ctx = current()
    loc = user_location()
    src = require_tensor(src, "nl.copy operand", loc)
    out = new_tensor(src.shape, dtype or src.dtype, MemoryKind.SBUF, location=loc)
    emit_movement.tensor_copy(out, src, mask=mask, location=loc)
    return _mark_fresh(ctx, out)


def load_transpose2d(src: NkiTensor, mask: Any = None, dtype: Any = None) -> NkiTensor:
    """HBM [F, P] -> SBUF [P, F]: a DMA that reads `src` with a transposed access pattern."""
    ctx = current()
    loc = user_location()
    src = require_tensor(src, "nl.load_transpose2d src", loc)
    if src.buffer is not MemoryKind.HBM or src.ndim != 2:
        raise UsageError(f"nl.load_transpose2d takes a 2-D HBM tensor [F, P], got {src!r}", loc)
    f, p = src.shape
    tile = new_tensor((p, f), dtype or src.dtype, MemoryKind.SBUF, location=loc)
    # Index arrays give element [i, j] = src[j, i]: the DMA's descriptors walk src column by column.
    emit_movement.dma_copy(tile, src[np.arange(f)[None, :], np.arange(p)[:, None]], mask=mask, location=loc)
    return _mark_fresh(ctx, tile)


def identity_matrix(n: Any, dtype: Any, dst: NkiTensor | None = None) -> NkiTensor:
    """An [n, n] SBUF identity: memset to 1, then affine_select keeps the diagonal (partition == column)."""
    loc = user_location()
    if dst is None:
        try:
            size = int(n)
        except (TypeError, ValueError):
            raise UsageError(f"nl.shared_identity_matrix(n) takes an int, got {n!r}", loc) from None
        dst = new_tensor((size, size), dtype, MemoryKind.SBUF, location=loc)
    dst = require_tensor(dst, "nl.shared_identity_matrix dst", loc)
    if dst.ndim != 2 or dst.shape[0] != dst.shape[1] or dst.shape[0] != int(n):
        raise ShapeMismatchError(
            f"nl.shared_identity_matrix({n}) dst must be [{n}, {n}], got {list(dst.shape)}", loc, rule="shape"
        )
    emit_movement.memset(dst, 1.0, location=loc)
    diag = np.arange(dst.shape[0])[:, None] == np.arange(dst.shape[1])[None, :]
    emit_select.affine_select(dst, diag, dst, 0.0, location=loc)
    return dst


def invert(x: NkiTensor, dtype: Any = None, mask: Any = None) -> NkiTensor:
    """~x for an integer tile: XOR with all ones of its width (a VectorE bitvec op)."""
    loc = user_location()
    x = require_tensor(x, "nl.invert operand", loc)
    if x.dtype.kind not in "iu":
        raise DtypeError(
            f"nl.invert is a bitwise op on integer tiles, got {dtypes.name(x.dtype)}; for 1/0 values use "
            "nl.logical_not",
            loc,
            rule="dtype",
        )
    ones = -1 if x.dtype.kind == "i" else (1 << (8 * x.dtype.itemsize)) - 1
    return elementwise_binary("bitwise_xor", x, ones, dtype=dtype, mask=mask)


def broadcast_to(src: NkiTensor, shape: Any) -> NkiTensor:
    """Broadcast a tile (e.g. one partition to many): GpSimd copy with partition broadcast."""
    ctx = current()
    loc = user_location()
    src = require_tensor(src, "nl.broadcast_to operand", loc)
    try:
        shp = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise UsageError(f"nl.broadcast_to shape must be a tuple of ints, got {shape!r}", loc) from None
    try:
        np.broadcast_shapes(tuple(src.shape), shp)
    except ValueError:
        raise ShapeMismatchError(f"cannot broadcast {list(src.shape)} to {list(shp)}", loc, rule="shape") from None
    if tuple(src.shape) == shp:
        return src
    out = new_tensor(shp, src.dtype, MemoryKind.SBUF, location=loc)
    emit_movement.broadcast_copy(out, src, loc)
    return _mark_fresh(ctx, out)


# -- compute -----------------------------------------------------------------------------------------
def _result_dtype(*xs: Any, dtype: Any = None) -> np.dtype[Any]:
    if dtype is not None:
        return _dtype(dtype, user_location())
    tiles = [x.dtype for x in xs if isinstance(x, NkiTensor)]
    return max(tiles, key=lambda d: (dtypes.is_float(d), d.itemsize))


def unary(op: str, x: NkiTensor, dtype: Any = None, mask: Any = None) -> NkiTensor:
    ctx = current()
    loc = user_location()
    x = require_tensor(x, f"nl.{op} operand", loc)
    out = new_tensor(x.shape, _result_dtype(x, dtype=dtype), MemoryKind.SBUF, location=loc)
    emit_arith.activation(out, op, x, mask=mask, location=loc)
    return _mark_fresh(ctx, out)


def _reusable(ctx: Any, tile: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> bool:
    """Whether a dying temporary can hold a result: a whole, fresh SBUF tile of the result's shape and dtype."""
    return (
        isinstance(tile, NkiTensor)
        and tile.alloc.id in ctx.fresh
        and tile.is_whole
        and tile.buffer is MemoryKind.SBUF
        and tile.alloc.blocks is None
        and tuple(tile.shape) == shape
        and tile.dtype == dtype
    )


def elementwise_binary(
    op: str,
    x: Any,
    y: Any,
    dtype: Any = None,
    mask: Any = None,
    out: NkiTensor | None = None,
    reuse: NkiTensor | None = None,
) -> NkiTensor:
    """`x <op> y` into `out`, else a fresh tile: `reuse`'s bytes, when the caller knows that tile dies here."""
    ctx = current()
    loc = user_location()
    if not isinstance(x, NkiTensor) and not isinstance(y, NkiTensor):
        raise UsageError(f"nl.{op} needs at least one tile operand", loc)
    try:
        shape = tuple(np.broadcast_shapes(*(tuple(t.shape) for t in (x, y) if isinstance(t, NkiTensor))))
    except ValueError:
        raise ShapeMismatchError(
            f"nl.{op} operands {list(x.shape)} and {list(y.shape)} do not broadcast to one shape", loc, rule="shape"
        ) from None
    if out is None:
        want = _result_dtype(x, y, dtype=dtype)
        if mask is None and reuse is not None and _reusable(ctx, reuse, shape, want):
            out_fresh = NkiTensor(reuse.alloc)  # engines may write the tile they read (in place)
        else:
            out_fresh = new_tensor(shape, want, location=loc)
    res = out if out is not None else out_fresh
    if isinstance(x, NkiTensor) and isinstance(y, NkiTensor):
        xs, ys = tuple(x.shape), tuple(y.shape)
        if xs == ys:
            emit_arith.tensor_tensor(res, x, y, op, mask=mask, location=loc)
        elif xs == shape and (ys == (shape[0], 1) or (ys[0] == shape[0] and int(np.prod(ys[1:])) == 1)):
            emit_arith.tensor_scalar(res, x, op, y, mask=mask, location=loc)  # per-partition operand
        elif ys == shape and xs[0] == shape[0] and int(np.prod(xs[1:])) == 1:
            emit_arith.tensor_scalar(res, y, op, x, reverse0=True, mask=mask, location=loc)
        else:
            bx = broadcast_to(x, shape) if xs != shape else x
            by = broadcast_to(y, shape) if ys != shape else y
            emit_arith.tensor_tensor(res, bx, by, op, mask=mask, location=loc)
    elif isinstance(x, NkiTensor):
        emit_arith.tensor_scalar(res, x, op, y, mask=mask, location=loc)
    else:
        emit_arith.tensor_scalar(res, y, op, x, reverse0=True, mask=mask, location=loc)
    return res if out is not None else _mark_fresh(ctx, res)


def matmul(x: NkiTensor, y: NkiTensor, transpose_x: bool = False, mask: Any = None) -> NkiTensor:
    """x.T @ y with transpose_x, else x @ y (x is transposed on TensorE first, as the compiler does)."""
    ctx = current()
    loc = user_location()
    x = require_tensor(x, "nl.matmul x", loc)
    y = require_tensor(y, "nl.matmul y", loc)
    k, m = (x.partition_size(), x.free_size()) if transpose_x else (x.free_size(), x.partition_size())
    check_matmul_limits(ctx.machine.spec.core, k, m, y.free_size(), loc)
    stationary = x
    if not transpose_x:
        xt = new_tensor((x.free_size(), x.partition_size()), x.dtype, MemoryKind.PSUM, location=loc)
        emit_matmul.nc_transpose(xt, x, engine=Engine.TENSOR, location=loc)
        stationary = new_tensor(xt.shape, x.dtype, MemoryKind.SBUF, location=loc)
        emit_movement.tensor_copy(stationary, xt, location=loc)
    out = new_tensor((stationary.free_size(), y.free_size()), dtypes.float32, MemoryKind.PSUM, location=loc)
    emit_matmul.nc_matmul(out, stationary, y, accumulate=False, mask=mask, location=loc)
    return _mark_fresh(ctx, out)


def transpose(x: NkiTensor, dtype: Any = None, mask: Any = None) -> NkiTensor:
    ctx = current()
    loc = user_location()
    x = require_tensor(x, "nl.transpose operand", loc)
    out = new_tensor((x.free_size(), x.partition_size()), dtype or x.dtype, MemoryKind.PSUM, location=loc)
    emit_matmul.nc_transpose(out, x, engine=Engine.TENSOR, mask=mask, location=loc)
    return _mark_fresh(ctx, out)


def _axes(x: Any, axis: Any, loc: str) -> tuple[int, ...]:
    """Reduction axes of tile `x` as non-negative ints; only free dims (1..) can be reduced."""
    return reduce_axes(require_tensor(x, "reduction operand", loc), axis, "reduction", loc)


def reduce(
    op: str, x: NkiTensor, axis: Any, dtype: Any = None, mask: Any = None, keepdims: bool = False, negate: bool = False
) -> NkiTensor:
    ctx = current()
    loc = user_location()
    axes = _axes(x, axis, loc)
    shape = tuple(1 if d in axes else s for d, s in enumerate(x.shape) if keepdims or d not in axes)
    if len(shape) < 2:
        shape = (*shape, 1) if shape else (1, 1)
    out = new_tensor(shape, _result_dtype(x, dtype=dtype), MemoryKind.SBUF, location=loc)
    emit_reduce.tensor_reduce(out, op, x, axes, negate=negate, keepdims=keepdims, mask=mask, location=loc)
    return _mark_fresh(ctx, out)


def mean(x: NkiTensor, axis: Any, dtype: Any = None, mask: Any = None, keepdims: bool = False) -> NkiTensor:
    axes = _axes(x, axis, user_location())
    count = int(np.prod([x.shape[a] for a in axes]))
    total = reduce("add", x, axes, dtype=dtypes.float32, mask=mask, keepdims=keepdims)
    return elementwise_binary("multiply", total, 1.0 / count, dtype=dtype or x.dtype)


def var(x: NkiTensor, axis: Any, dtype: Any = None, mask: Any = None) -> NkiTensor:
    mu = mean(x, axis, dtype=dtypes.float32, mask=mask, keepdims=True)
    centered = elementwise_binary("subtract", x, mu, dtype=dtypes.float32, mask=mask)
    return mean(elementwise_binary("multiply", centered, centered, mask=mask), axis, dtype=dtype or x.dtype, mask=mask)


def softmax(x: NkiTensor, axis: Any = -1, dtype: Any = None, mask: Any = None) -> NkiTensor:
    """exp(x - max) / sum: the max is folded into ScalarE's free bias and the sum into its reduction."""
    ctx = current()
    loc = user_location()
    x = require_tensor(x, "nl.softmax operand", loc)
    neg_max = reduce("maximum", x, axis, dtype=dtypes.float32, mask=mask, keepdims=True, negate=True)
    e = new_tensor(x.shape, dtypes.float32, location=loc)
    total = new_tensor((x.partition_size(), 1), dtypes.float32, location=loc)
    emit_arith.activation(e, "exp", x, bias=neg_max, reduce_op="add", reduce_res=total, mask=mask, location=loc)
    inv = unary("reciprocal", total)
    out = new_tensor(x.shape, dtype or x.dtype, location=loc)
    emit_arith.tensor_scalar(out, e, "multiply", inv, mask=mask, location=loc)
    return _mark_fresh(ctx, out)


def where(cond: NkiTensor, x: Any, y: Any, dtype: Any = None, mask: Any = None) -> NkiTensor:
    ctx = current()
    loc = user_location()
    if not isinstance(x, NkiTensor):
        raise UsageError("nl.where needs a tile for x", loc)
    out = new_tensor(x.shape, _result_dtype(x, y, dtype=dtype), location=loc)
    emit_select.select(out, cond, x, y, mask=mask, location=loc)
    return _mark_fresh(ctx, out)


def device_print(prefix: str, x: Any) -> None:
    ctx = current()
    if ctx.machine.functional and isinstance(x, NkiTensor):
        print(prefix, read_f32(ctx, x, None, user_location()).astype(x.dtype) if x.dtype.kind != "V" else x.read())
    else:
        print(prefix, x)


install_tile_language(
    TileLanguage(
        assign=assign,
        accumulate=accumulate,
        copy=copy,
        broadcast_to=broadcast_to,
        elementwise_binary=elementwise_binary,
    )
)
