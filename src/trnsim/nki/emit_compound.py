"""Issuing VectorE's compound instructions: tensor_tensor_scan, scalar_tensor_tensor, reciprocal."""

from __future__ import annotations

from typing import Any

import numpy as np

from trnsim.errors import UsageError
from trnsim.isa import semantics as sem
from trnsim.isa.alu import BINARY_OPS
from trnsim.isa.cost import CostArgs
from trnsim.isa.instruction import Instruction
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.context import TraceContext, current, user_location
from trnsim.nki.emit import _values, issue
from trnsim.nki.emit_engines import _check_tile, _op_name, _resolve, _same_elements, _vector_operand
from trnsim.nki.operands import broadcast_mask, cost_facts, masked_extent, require_tensor
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

# These instructions do fp32 arithmetic only: no bitvec ops (trainium.md §3.6).
_BITVEC = ("bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift")
ARITH_OPS = {k: v for k, v in BINARY_OPS.items() if k not in _BITVEC}


def _tiles(ctx: TraceContext, what: str, loc: str, **named: Any) -> list[NkiTensor]:
    """Each named operand as an on-chip tile with the same partitions and elements per partition."""
    tiles = [require_tensor(x, f"{what} {name}", loc) for name, x in named.items()]
    for t, name in zip(tiles, named):
        _check_tile(ctx, t, f"{what} {name}", loc)
        _same_elements(tiles[0], t, what, loc)
    return tiles


def _not_both_psum(a: NkiTensor, b: NkiTensor, what: str, loc: str) -> None:
    if a.buffer is MemoryKind.PSUM and b.buffer is MemoryKind.PSUM:
        raise UsageError(f"{what} tensor inputs cannot both be in PSUM", loc, rule="buffer")


def tensor_tensor_scan(
    dst: Any,
    data0: Any,
    data1: Any,
    initial: Any,
    op0: Any,
    op1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    """Per partition: r[i] = op1(op0(data0[i], r[i-1]), data1[i]) with r[-1] = initial (VectorE)."""
    ctx = current()
    loc = location or user_location()
    what = "tensor_tensor_scan"
    dst, a, b = _tiles(ctx, what, loc, dst=dst, data0=data0, data1=data1)
    _not_both_psum(a, b, what, loc)
    n0 = _op_name(op0, ARITH_OPS, f"{what} op0", loc)
    n1 = _op_name(op1, ARITH_OPS, f"{what} op1", loc)
    init_v, init_t = _vector_operand(ctx, initial, a.partition_size(), f"{what} initial", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, n_inputs=2, alu_op=f"{n0},{n1}", **cost_facts(ctx.machine.spec.core, [dst, a, b]))

    def compute() -> np.ndarray:
        x = _values(ctx, a, m, loc).reshape(dst.shape)
        y = _values(ctx, b, m, loc).reshape(dst.shape)
        init = _resolve(init_t[0], ctx, loc, m) if init_t else init_v
        return sem.tensor_tensor_scan(x, y, init, n0, n1, reverse0, reverse1)

    return issue(
        ctx,
        Opcode.TENSOR_TENSOR_SCAN,
        Engine.VECTOR,
        dst,
        [a, b, *init_t],
        cost,
        compute,
        loc,
        m,
        label=f"tensor_tensor_scan({n0},{n1})",
    )


def scalar_tensor_tensor(
    dst: Any,
    data: Any,
    op0: Any,
    operand0: Any,
    op1: Any,
    operand1: Any,
    reverse0: bool = False,
    reverse1: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    """dst = (data op0 operand0) op1 operand1: operand0 a scalar or [P, 1] tile, operand1 a whole tile (VectorE)."""
    ctx = current()
    loc = location or user_location()
    what = "scalar_tensor_tensor"
    dst, x, y = _tiles(ctx, what, loc, dst=dst, data=data, operand1=operand1)
    _not_both_psum(x, y, what, loc)
    n0 = _op_name(op0, ARITH_OPS, f"{what} op0", loc)
    n1 = _op_name(op1, ARITH_OPS, f"{what} op1", loc)
    s_v, s_t = _vector_operand(ctx, operand0, x.partition_size(), f"{what} operand0", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, n_inputs=2, alu_op=f"{n0},{n1}", **cost_facts(ctx.machine.spec.core, [dst, x, y]))

    def compute() -> np.ndarray:
        s = _resolve(s_t[0], ctx, loc, m) if s_t else s_v
        xv = _values(ctx, x, m, loc).reshape(dst.shape)
        yv = _values(ctx, y, m, loc).reshape(dst.shape)
        return sem.scalar_tensor_tensor(xv, n0, s, n1, yv, reverse0, reverse1)

    return issue(
        ctx,
        Opcode.SCALAR_TENSOR_TENSOR,
        Engine.VECTOR,
        dst,
        [x, y, *s_t],
        cost,
        compute,
        loc,
        m,
        label=f"scalar_tensor_tensor({n0},{n1})",
    )


def reciprocal(dst: Any, data: Any, mask: Any = None, location: str | None = None) -> Instruction:
    """dst = 1 / data on VectorE (fp32; on hardware more precise, and ~8x slower, than activation(nl.reciprocal))."""
    ctx = current()
    loc = location or user_location()
    dst, x = _tiles(ctx, "reciprocal", loc, dst=dst, data=data)
    m = broadcast_mask(mask, dst.shape, loc)
    pe, n = masked_extent(m, dst.shape)
    cost = CostArgs(n=n, p=pe, **cost_facts(ctx.machine.spec.core, [dst, x]))
    return issue(
        ctx,
        Opcode.RECIPROCAL,
        Engine.VECTOR,
        dst,
        [x],
        cost,
        lambda: sem.reciprocal(_values(ctx, x, m, loc).reshape(dst.shape)),
        loc,
        m,
        label="reciprocal",
    )
