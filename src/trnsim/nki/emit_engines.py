"""Issuing Vector, Scalar and GpSimd instructions (activation, tensor_*, memset, iota, bn_*, selects)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import ShapeMismatchError, TileShapeError, UsageError
from trnsim.isa import semantics as sem
from trnsim.isa.alu import ACTIVATIONS, BINARY_OPS, REDUCE_OPS, SCALAR_ENGINE_ALU_OPS
from trnsim.isa.cost import CostArgs
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.context import TraceContext, current, user_location
from trnsim.nki.emit import _values, issue, pick_engine
from trnsim.nki.operands import (
    broadcast_mask,
    check_partitions,
    cost_facts,
    masked_extent,
    read_f32,
    read_stored,
    require_on_chip,
    require_tensor,
    write,
)
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

# bn_stats handles at most this many elements per partition (nl.tile_size.bn_stats_fmax, trainium.md §3.2).
BN_STATS_FMAX = 512
_REDUCE_IDENTITY = {"add": 0.0, "multiply": 1.0, "maximum": -np.inf, "minimum": np.inf}


def _check_tile(ctx: TraceContext, t: NkiTensor, what: str, loc: str, allow_psum: bool = True) -> None:
    require_on_chip(t, what, loc, allow_psum)
    check_partitions(t, ctx.machine.spec.core, what, loc)


def _same_elements(dst: NkiTensor, src: NkiTensor, what: str, loc: str) -> None:
    if dst.partition_size() != src.partition_size() or dst.free_size() != src.free_size():
        raise ShapeMismatchError(
            f"{what}: dst {list(dst.shape)} and input {list(src.shape)} must have the same partitions and "
            "elements per partition",
            loc,
            rule="shape",
        )


def _vector_operand(ctx: TraceContext, x: Any, p: int, what: str, loc: str) -> tuple[Any, list[NkiTensor]]:
    """A scalar, or a [P, 1] per-partition tile broadcast along the free axis."""
    if isinstance(x, NkiTensor):
        _check_tile(ctx, x, what, loc)
        if x.partition_size() != p or x.free_size() != 1:
            raise ShapeMismatchError(
                f"{what} must be a scalar or a [{p}, 1] tile, got {list(x.shape)}", loc, rule="shape"
            )
        return x, [x]
    try:
        return float(x), []
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number or a [P, 1] tile, got {type(x).__name__}", loc) from None


def _resolve(value: Any, ctx: TraceContext, loc: str, mask: np.ndarray | None = None) -> Any:
    """A scalar operand as is, or a [P, 1] tile's values (only the partitions the mask lets through count)."""
    if not isinstance(value, NkiTensor):
        return value
    rows = None if mask is None else np.asarray(mask.reshape(mask.shape[0], -1).any(axis=1)).reshape(value.shape)
    return _values(ctx, value, rows, loc)


def _op_name(op: Any, table: dict[str, Any], what: str, loc: str) -> str:
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


def activation(
    dst: Any,
    op: Any,
    data: Any,
    bias: Any = None,
    scale: Any = 1.0,
    reduce_op: Any = None,
    reduce_res: Any = None,
    accumulate_reduce: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "activation dst", loc)
    data = require_tensor(data, "activation data", loc)
    _check_tile(ctx, dst, "activation dst", loc)
    _check_tile(ctx, data, "activation data", loc)
    _same_elements(dst, data, "activation", loc)
    fn = _op_name(op, ACTIVATIONS, "activation function", loc)
    p = data.partition_size()
    scale_v, scale_t = _vector_operand(ctx, scale, p, "activation scale", loc)
    bias_v, bias_t = (None, []) if bias is None else _vector_operand(ctx, bias, p, "activation bias", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    red = None
    if reduce_res is not None:
        red = require_tensor(reduce_res, "activation reduce_res", loc)
        _check_tile(ctx, red, "activation reduce_res", loc)
        if red.partition_size() != p or red.free_size() != 1:
            raise ShapeMismatchError(f"reduce_res must be [{p}, 1], got {list(red.shape)}", loc, rule="shape")
        rop = _op_name(reduce_op or "add", REDUCE_OPS, "reduce_op", loc)
    cost = CostArgs(n=n, p=pe, reduce=red is not None, **cost_facts(ctx.machine.spec.core, [dst, data]))

    fp32_out: list[np.ndarray] = []  # the reduction sees ScalarE's fp32 results, before the cast on write

    def compute() -> np.ndarray:
        x = _values(ctx, data, m, loc).reshape(dst.shape)
        s = _resolve(scale_t[0], ctx, loc, m) if scale_t else scale_v
        b = _resolve(bias_t[0], ctx, loc, m) if bias_t else bias_v
        out = sem.activation(fn, x, s, b)
        fp32_out.append(out)
        return out

    ins = issue(
        ctx,
        Opcode.ACTIVATION,
        Engine.SCALAR,
        dst,
        [data, *scale_t, *bias_t],
        cost,
        compute,
        loc,
        m,
        label=f"activation({fn})",
    )
    if red is not None:
        ins.writes = (*ins.writes, red.region())
        if ctx.machine.functional:
            out = fp32_out[0]
            if m is not None:
                out = np.where(m, out, 0.0)
            values = sem.reduce_free(rop, out)
            if accumulate_reduce:
                values = sem.tensor_tensor(rop, read_f32(ctx, red, None, loc).reshape(values.shape), values)
            write(red, values, None)
    return ins


def tensor_tensor(
    dst: Any,
    data1: Any,
    data2: Any,
    op: Any,
    engine: Engine | None = None,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "tensor_tensor dst", loc)
    a = require_tensor(data1, "tensor_tensor data1", loc)
    b = require_tensor(data2, "tensor_tensor data2", loc)
    for t, w in ((dst, "dst"), (a, "data1"), (b, "data2")):
        _check_tile(ctx, t, f"tensor_tensor {w}", loc)
        _same_elements(dst, t, "tensor_tensor", loc)
    if a.buffer is MemoryKind.PSUM and b.buffer is MemoryKind.PSUM:
        raise UsageError("tensor_tensor inputs cannot both be in PSUM", loc, rule="buffer")
    name = _op_name(op, BINARY_OPS, "tensor_tensor op", loc)
    if engine is None and name == "power":
        engine = Engine.GPSIMD  # power runs on GpSimd (trainium.md §3.6)
    eng = pick_engine(Opcode.TENSOR_TENSOR, engine, loc, [dst, a, b])
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    psum_in = MemoryKind.PSUM in (a.buffer, b.buffer)
    cost = CostArgs(
        n=n, p=pe, n_inputs=2, psum_input=psum_in, alu_op=name, **cost_facts(ctx.machine.spec.core, [dst, a, b])
    )
    return issue(
        ctx,
        Opcode.TENSOR_TENSOR,
        eng,
        dst,
        [a, b],
        cost,
        lambda: sem.tensor_tensor(
            name, _values(ctx, a, m, loc).reshape(dst.shape), _values(ctx, b, m, loc).reshape(dst.shape)
        ),
        loc,
        m,
        label=f"tensor_tensor({name})",
    )


def tensor_scalar(
    dst: Any,
    data: Any,
    op0: Any,
    operand0: Any,
    reverse0: bool = False,
    op1: Any = None,
    operand1: Any = None,
    reverse1: bool = False,
    engine: Engine | None = None,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "tensor_scalar dst", loc)
    data = require_tensor(data, "tensor_scalar data", loc)
    _check_tile(ctx, dst, "tensor_scalar dst", loc)
    _check_tile(ctx, data, "tensor_scalar data", loc)
    _same_elements(dst, data, "tensor_scalar", loc)
    p = data.partition_size()
    n0 = _op_name(op0, BINARY_OPS, "tensor_scalar op0", loc)
    v0, t0 = _vector_operand(ctx, operand0, p, "tensor_scalar operand0", loc)
    n1, v1 = None, None
    t1: list[NkiTensor] = []
    if op1 is not None:
        n1 = _op_name(op1, BINARY_OPS, "tensor_scalar op1", loc)
        v1, t1 = _vector_operand(ctx, operand1, p, "tensor_scalar operand1", loc)
    eng = pick_engine(Opcode.TENSOR_SCALAR, engine, loc, [dst, data])
    if eng is Engine.SCALAR:
        core = ctx.machine.spec.core
        bad = [x for x in (n0, n1) if x is not None and x not in SCALAR_ENGINE_ALU_OPS]
        if core.nc_version < 3 or bad:
            raise UsageError(
                "tensor_scalar on the scalar engine supports only add and multiply, from NeuronCore-v3 on",
                loc,
                rule="engine",
            )
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, alu_op=n0, **cost_facts(ctx.machine.spec.core, [dst, data]))

    def compute() -> np.ndarray:
        x = _values(ctx, data, m, loc).reshape(dst.shape)
        o0 = _resolve(t0[0], ctx, loc, m) if t0 else v0
        o1 = (_resolve(t1[0], ctx, loc, m) if t1 else v1) if n1 else None
        return sem.tensor_scalar(x, n0, o0, reverse0, n1, o1, reverse1)

    return issue(
        ctx,
        Opcode.TENSOR_SCALAR,
        eng,
        dst,
        [data, *t0, *t1],
        cost,
        compute,
        loc,
        m,
        label=f"tensor_scalar({n0}{',' + n1 if n1 else ''})",
    )


def tensor_reduce(
    dst: Any,
    op: Any,
    data: Any,
    axis: Any,
    negate: bool = False,
    keepdims: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "tensor_reduce dst", loc)
    data = require_tensor(data, "tensor_reduce data", loc)
    _check_tile(ctx, dst, "tensor_reduce dst", loc)
    _check_tile(ctx, data, "tensor_reduce data", loc)
    name = _op_name(op, REDUCE_OPS, "tensor_reduce op", loc)
    try:
        axes = tuple(int(a) for a in (axis if isinstance(axis, list | tuple) else [axis]))
    except (TypeError, ValueError):
        raise UsageError(
            f"tensor_reduce axis must be an int or a list of ints, got {axis!r}", loc, rule="reduce-axis"
        ) from None
    axes = tuple(a + data.ndim if a < 0 else a for a in axes)
    if not axes or any(a < 1 or a >= data.ndim for a in axes):
        raise UsageError(
            f"tensor_reduce axis {axis} must name free dims (1..{data.ndim - 1}); the partition dim 0 cannot be "
            "reduced here (transpose it first or use a matmul with ones)",
            loc,
            rule="reduce-axis",
        )
    out_shape = tuple(1 if d in axes else s for d, s in enumerate(data.shape) if keepdims or d not in axes)
    if int(np.prod(out_shape)) != dst.size or dst.partition_size() != data.partition_size():
        raise ShapeMismatchError(
            f"tensor_reduce dst must hold {list(out_shape)}, got {list(dst.shape)}", loc, rule="shape"
        )
    m = broadcast_mask(mask, data.shape, loc)
    dmask = None if m is None else m.any(axis=axes, keepdims=keepdims).reshape(dst.shape)
    pe, n = masked_extent(m, data.shape)
    cost = CostArgs(n=n, p=pe, alu_op=name, **cost_facts(ctx.machine.spec.core, [dst, data]))

    def compute() -> np.ndarray:
        x = _values(ctx, data, m, loc)
        if m is not None:  # masked-out lanes take no part: fill them with the op's identity
            x = np.where(m, x, _REDUCE_IDENTITY.get(name, 0.0))
        return sem.tensor_reduce(name, x, axes, negate, keepdims).reshape(dst.shape)

    return issue(
        ctx,
        Opcode.TENSOR_REDUCE,
        Engine.VECTOR,
        dst,
        [data],
        cost,
        compute,
        loc,
        dmask,
        label=f"tensor_reduce({name})",
        src_mask=m,
    )


def tensor_copy(
    dst: Any, src: Any, engine: Engine | None = None, mask: Any = None, location: str | None = None
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "tensor_copy dst", loc)
    src = require_tensor(src, "tensor_copy src", loc)
    _check_tile(ctx, dst, "tensor_copy dst", loc)
    _check_tile(ctx, src, "tensor_copy src", loc)
    _same_elements(dst, src, "tensor_copy", loc)
    eng = pick_engine(Opcode.TENSOR_COPY, engine, loc, [dst, src])
    # Vector and GpSimd copy same-dtype data bit-exactly; ScalarE (and any cast) goes through fp32.
    read = read_stored if src.dtype == dst.dtype and eng is not Engine.SCALAR else read_f32
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(
        n=n, p=pe, psum_input=src.buffer is MemoryKind.PSUM, **cost_facts(ctx.machine.spec.core, [dst, src])
    )

    def compute() -> np.ndarray:
        vals = read(ctx, src, m if m is not None and m.shape == src.shape else None, loc)
        return sem.tensor_copy(vals).reshape(dst.shape)

    return issue(
        ctx,
        Opcode.TENSOR_COPY,
        eng,
        dst,
        [src],
        cost,
        compute,
        loc,
        m,
        label=f"tensor_copy({eng.key})",
    )


def memset(
    dst: Any, value: Any, engine: Engine | None = None, mask: Any = None, location: str | None = None
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "memset dst", loc)
    _check_tile(ctx, dst, "memset dst", loc)
    eng = pick_engine(Opcode.MEMSET, engine, loc, [dst])
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"memset value must be a number, got {type(value).__name__} {value!r}", loc) from None
    cost = CostArgs(n=n, p=pe, zero_fill=v == 0.0, **cost_facts(ctx.machine.spec.core, [dst]))
    return issue(ctx, Opcode.MEMSET, eng, dst, [], cost, lambda: sem.memset(dst.shape, v), loc, m, label="memset")


def iota(dst: Any, values: np.ndarray, mask: Any = None, location: str | None = None) -> Instruction:
    """Fill dst with integer index values generated on GpSimd (values computed from the index pattern)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "iota dst", loc)
    _check_tile(ctx, dst, "iota dst", loc, allow_psum=False)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    vals = np.broadcast_to(np.asarray(values), dst.shape).astype(np.int32)  # GpSimd integer arithmetic
    if dtypes.is_float(dst.dtype):
        vals = vals.astype(np.float32)  # int32 -> fp32 -> dst dtype, like every engine's cast on write
    cost = CostArgs(n=n, p=pe, **cost_facts(ctx.machine.spec.core, [dst]))
    return issue(ctx, Opcode.IOTA, Engine.GPSIMD, dst, [], cost, lambda: vals, loc, m, label="iota")


def affine_select(
    dst: Any, predicate: np.ndarray, on_true: Any, on_false_value: float, mask: Any = None, location: str | None = None
) -> Instruction:
    """dst = on_true where the compile-time affine predicate holds, else on_false_value (GpSimd)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "affine_select dst", loc)
    src = require_tensor(on_true, "affine_select on_true", loc)
    _check_tile(ctx, dst, "affine_select dst", loc, allow_psum=False)
    _check_tile(ctx, src, "affine_select on_true", loc, allow_psum=False)
    _same_elements(dst, src, "affine_select", loc)
    pred = np.broadcast_to(np.asarray(predicate, dtype=bool), dst.shape)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, **cost_facts(ctx.machine.spec.core, [dst, src]))
    return issue(
        ctx,
        Opcode.AFFINE_SELECT,
        Engine.GPSIMD,
        dst,
        [src],
        cost,
        lambda: sem.affine_select(pred, _values(ctx, src, m, loc).reshape(dst.shape), on_false_value),
        loc,
        m,
        label="affine_select",
    )


def select(
    dst: Any,
    predicate: Any,
    on_true: Any,
    on_false: Any,
    engine: Engine | None = None,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    """dst = on_true where predicate != 0 else on_false (a tile or a number): nl.where."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "where dst", loc)
    pred = require_tensor(predicate, "where condition", loc)
    a = require_tensor(on_true, "where x", loc)
    operands = [dst, pred, a] + ([on_false] if isinstance(on_false, NkiTensor) else [])
    for t in operands:
        _check_tile(ctx, t, "where operand", loc)
        _same_elements(dst, t, "where", loc)
    eng = pick_engine(Opcode.SELECT, engine, loc, operands)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, n_inputs=len(operands) - 1, **cost_facts(ctx.machine.spec.core, operands))

    def compute() -> np.ndarray:
        f = _values(ctx, on_false, m, loc).reshape(dst.shape) if isinstance(on_false, NkiTensor) else float(on_false)
        return sem.select(_values(ctx, pred, m, loc).reshape(dst.shape), _values(ctx, a, m, loc).reshape(dst.shape), f)

    return issue(ctx, Opcode.SELECT, eng, dst, operands[1:], cost, compute, loc, m, label="select")


def bn_stats(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "bn_stats dst", loc)
    data = require_tensor(data, "bn_stats data", loc)
    _check_tile(ctx, dst, "bn_stats dst", loc)
    _check_tile(ctx, data, "bn_stats data", loc)
    if data.free_size() > BN_STATS_FMAX:
        raise TileShapeError(
            f"bn_stats takes at most {BN_STATS_FMAX} elements per partition (nl.tile_size.bn_stats_fmax), got "
            f"{data.free_size()}",
            loc,
            rule="bn_stats_fmax",
        )
    if dst.partition_size() != data.partition_size() or dst.free_size() != 6:
        raise ShapeMismatchError(
            f"bn_stats dst must be [{data.partition_size()}, 6], got {list(dst.shape)}", loc, rule="shape"
        )
    cost = CostArgs(n=data.free_size(), p=data.partition_size(), **cost_facts(ctx.machine.spec.core, [dst, data]))
    return issue(
        ctx,
        Opcode.BN_STATS,
        Engine.VECTOR,
        dst,
        [data],
        cost,
        lambda: sem.bn_stats(_values(ctx, data, None, loc)).reshape(dst.shape),
        loc,
        None,
        label="bn_stats",
    )


def bn_aggr(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "bn_aggr dst", loc)
    data = require_tensor(data, "bn_aggr data", loc)
    _check_tile(ctx, dst, "bn_aggr dst", loc)
    _check_tile(ctx, data, "bn_aggr data", loc)
    if data.free_size() % 3:
        raise ShapeMismatchError(
            f"bn_aggr input must hold (count, mean, var*count) triples: elements per partition {data.free_size()} "
            "is not a multiple of 3",
            loc,
            rule="shape",
        )
    if dst.partition_size() != data.partition_size() or dst.free_size() != 2:
        raise ShapeMismatchError(
            f"bn_aggr dst must be [{data.partition_size()}, 2], got {list(dst.shape)}", loc, rule="shape"
        )
    cost = CostArgs(n=data.free_size(), p=data.partition_size(), **cost_facts(ctx.machine.spec.core, [dst, data]))
    return issue(
        ctx,
        Opcode.BN_AGGR,
        Engine.VECTOR,
        dst,
        [data],
        cost,
        lambda: sem.bn_aggr(_values(ctx, data, None, loc)).reshape(dst.shape),
        loc,
        None,
        label="bn_aggr",
    )
