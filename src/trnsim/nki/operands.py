"""Operands of an instruction as a kernel passes them: tiles, masks, scalars, op names; values in and out.

Engines read operands as fp32 and cast on write (trainium.md §3.3). Reads of memory nobody wrote
add a warning to the profile (the values are the NaN/4 poison). The rules an instruction's operands
must obey are its record's (isa/instructions/); `describe` gives a tile's isa-level view.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.isa.alu import INT_OPS
from trnsim.isa.operand import Operand
from trnsim.isa.rules import check_partitions, require_buffer
from trnsim.nki import replay_recorder
from trnsim.nki.context import TraceContext
from trnsim.nki.tensor import NkiTensor


def require_tensor(x: Any, what: str, location: str) -> NkiTensor:
    if not isinstance(x, NkiTensor):
        raise UsageError(f"{what} must be an NKI tensor (tile), got {type(x).__name__}", location)
    return x


def describe(t: NkiTensor, name: str, dma: bool = False) -> Operand:
    """The isa-level view of a tile: engines' costs need its innermost stride, DMA's its contiguous runs
    (each a walk of the view, so only the one the instruction's cost reads is measured)."""
    if dma:
        return Operand(name, t.shape, t.dtype, t.buffer, contiguous_run_bytes=t.contiguous_run_bytes(), source=t)
    return Operand(name, t.shape, t.dtype, t.buffer, innermost_stride_bytes=t.innermost_stride_bytes(), source=t)


def broadcast_mask(mask: Any, shape: tuple[int, ...], location: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask, dtype=bool)
    try:
        return np.broadcast_to(m, shape)
    except ValueError:
        raise UsageError(
            f"mask of shape {list(m.shape)} does not broadcast to the tile shape {list(shape)}", location
        ) from None


def masked_extent(mask: np.ndarray | None, shape: tuple[int, ...]) -> tuple[int, int]:
    """(partitions, elements per partition) an instruction actually processes under its mask."""
    p = shape[0] if shape else 1
    n = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if mask is None:
        return p, n
    m2 = mask.reshape(p, -1)
    rows = m2.any(axis=1)
    return int(rows.sum()), int(m2.sum(axis=1).max()) if m2.size else 0


def read_f32(ctx: TraceContext, t: NkiTensor, mask: np.ndarray | None, location: str) -> np.ndarray:
    """Values of `t` as float32 (functional mode only), warning on uninitialised reads."""
    vals = read_stored(ctx, t, mask, location)
    return dtypes.to_float32(vals) if vals.dtype != np.float32 else vals


def read_for_op(ctx: TraceContext, t: NkiTensor, mask: np.ndarray | None, location: str, op: str) -> np.ndarray:
    """Operand values for ALU op `op`: raw integers for bitwise ops, fp32 for everything else."""
    if op in INT_OPS:  # the record refused non-integer tiles when the call was issued
        m = mask if mask is not None and mask.shape == t.shape else None
        return read_stored(ctx, t, m, location).astype(np.int64)
    return read_masked(ctx, t, mask, location)


def read_stored(ctx: TraceContext, t: NkiTensor, mask: np.ndarray | None, location: str) -> np.ndarray:
    """Values of `t` in its own dtype, for bit-exact moves (DMA, same-dtype copies); warns like read_f32."""
    if not t.alloc.root.fully_written:
        written = t.alloc.written_mask()
        region = written[t.np_index(clip=True)] if written is not None else np.zeros(t.shape, dtype=bool)
        if mask is not None:
            region = region[mask]
        if not region.all():
            ctx.machine.warn(
                f"{location}: read of uninitialised memory in {t.alloc.describe()} (it reads as "
                f"{'NaN' if dtypes.is_float(t.dtype) else 4})"
            )
    return t.read()


def write(t: NkiTensor, values: np.ndarray, mask: np.ndarray | None) -> None:
    """Cast `values` to the tensor's dtype and store them where the mask allows (functional mode)."""
    alloc = t.alloc
    assert alloc.storage is not None
    if (rec := replay_recorder.RECORDING) is not None and not rec.inside:
        rec.host_write(alloc.describe())  # values written outside an instruction: no replay
    vals = np.asarray(values)
    if vals.shape != t.shape:
        vals = vals.reshape(t.shape) if vals.size == t.size else np.broadcast_to(vals, t.shape)
    cast = vals.astype(alloc.dtype) if vals.dtype != alloc.dtype else vals
    if mask is None:
        idx = t.np_index()
        alloc.storage[idx] = cast
        if t.is_whole:
            alloc.mark_all_written()
        elif not alloc.root.fully_written:
            alloc.note_written(idx, t.size, not t.has_index_arrays)
        return
    full = _full_index(t)
    sel = tuple(a[mask] for a in full)
    alloc.storage[sel] = cast[mask]
    if not alloc.root.fully_written:
        alloc.note_written(sel, int(sel[0].size) if sel else 1, not t.has_index_arrays)


def _full_index(t: NkiTensor) -> tuple[np.ndarray, ...]:
    """Per-allocation-dim index arrays of shape t.shape (for masked writes)."""
    out: list[np.ndarray] = []
    visible = 0
    grids = np.indices(t.shape) if not t.has_index_arrays else None
    for k in t.key:
        if isinstance(k, tuple):
            assert grids is not None
            out.append(k[0] + grids[visible] * k[2])
            visible += 1
        elif isinstance(k, np.ndarray):
            out.append(np.broadcast_to(k, t.shape))
        else:
            out.append(np.full(t.shape, k, dtype=np.int64))
    return tuple(out)


def read_masked(ctx: TraceContext, t: NkiTensor, mask: np.ndarray | None, loc: str) -> np.ndarray:
    return read_f32(ctx, t, mask if mask is not None and mask.shape == t.shape else None, loc)


def check_tile(ctx: TraceContext, t: NkiTensor, what: str, loc: str, allow_psum: bool = True) -> None:
    """`t` is an on-chip tile (SBUF, or PSUM where allowed) within the partition limit."""
    op = Operand(what, t.shape, t.dtype, t.buffer, source=t)
    require_buffer(op, what, loc, allow_psum)
    check_partitions(op, ctx.machine.spec.core, what, loc)


def same_elements(dst: NkiTensor, src: NkiTensor, what: str, loc: str) -> None:
    if dst.partition_size() != src.partition_size() or dst.free_size() != src.free_size():
        raise ShapeMismatchError(
            f"{what}: dst {list(dst.shape)} and input {list(src.shape)} must have the same partitions and "
            "elements per partition",
            loc,
            rule="shape",
        )


def vector_operand(ctx: TraceContext, x: Any, p: int, what: str, loc: str) -> tuple[Any, list[NkiTensor]]:
    """A scalar, or a [P, 1] per-partition tile broadcast along the free axis."""
    if isinstance(x, NkiTensor):
        check_tile(ctx, x, what, loc)
        if x.partition_size() != p or x.free_size() != 1:
            raise ShapeMismatchError(
                f"{what} must be a scalar or a [{p}, 1] tile, got {list(x.shape)}", loc, rule="shape"
            )
        return x, [x]
    try:
        return float(x), []
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number or a [P, 1] tile, got {type(x).__name__}", loc) from None


def resolve_operand(value: Any, ctx: TraceContext, loc: str, mask: np.ndarray | None = None) -> Any:
    """A scalar operand as is, or a [P, 1] tile's values (only the partitions the mask lets through count)."""
    if not isinstance(value, NkiTensor):
        return value
    rows = None if mask is None else np.asarray(mask.reshape(mask.shape[0], -1).any(axis=1)).reshape(value.shape)
    return read_masked(ctx, value, rows, loc)


def op_name(op: Any, table: dict[str, Any], what: str, loc: str) -> str:
    name = getattr(op, "nki_name", None) or getattr(op, "__name__", None) or str(op)
    name = {
        "true_divide": "divide",
        "absolute": "abs",
        "identity": "copy",
        # np.max / np.amax / np.min / np.amin: legacy kernels pass these as reduction ops
        "max": "maximum",
        "amax": "maximum",
        "min": "minimum",
        "amin": "minimum",
    }.get(name, name)
    if name not in table:
        raise UsageError(f"{what} {name!r} is not supported; supported: {', '.join(sorted(table))}", loc, rule="op")
    return name


def same_shape_tiles(ctx: TraceContext, what: str, loc: str, **named: Any) -> list[NkiTensor]:
    """Each named operand as an on-chip tile with the same partitions and elements per partition."""
    tiles = [require_tensor(x, f"{what} {name}", loc) for name, x in named.items()]
    for t, name in zip(tiles, named):
        check_tile(ctx, t, f"{what} {name}", loc)
        same_elements(tiles[0], t, what, loc)
    return tiles


def reduce_axes(x: NkiTensor, axis: Any, what: str, loc: str) -> tuple[int, ...]:
    """Reduction axes of tile `x` as non-negative ints; only free dims (1..) can be reduced."""
    try:
        axes = tuple(int(a) for a in (axis if isinstance(axis, list | tuple) else [axis]))
    except (TypeError, ValueError):
        raise UsageError(
            f"{what} axis must be an int or a list of ints, got {axis!r}", loc, rule="reduce-axis"
        ) from None
    axes = tuple(a + x.ndim if a < 0 else a for a in axes)
    if not axes or any(a < 1 or a >= x.ndim for a in axes):
        raise UsageError(
            f"{what} axis {axis} must name free dims (1..{x.ndim - 1}); the partition dim 0 cannot be "
            "reduced here (transpose it first or use a matmul with ones)",
            loc,
            rule="reduce-axis",
        )
    return axes
