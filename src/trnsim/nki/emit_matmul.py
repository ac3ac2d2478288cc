"""Builders of TensorE instructions: nc_matmul (with NKI's auto-accumulate into PSUM) and nc_transpose."""

from __future__ import annotations

from typing import Any

from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions.nc_matmul import transpose_mode
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import broadcast_mask, read_masked, require_tensor
from trnsim.nki.tiles import check_matmul_banks, psum_group_open


def nc_matmul(
    dst: Any,
    stationary: Any,
    moving: Any,
    accumulate: bool | None = None,
    double_row: bool = False,
    mask: Any = None,
    location: str | None = None,
    is_transpose: bool = False,
) -> Instruction:
    """dst[M, N] = stationary.T @ moving; is_transpose: the PE array's transpose mode (NC-v3 on, see the record)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "nc_matmul dst", loc)
    st = require_tensor(stationary, "nc_matmul stationary", loc)
    mv = require_tensor(moving, "nc_matmul moving", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    # accumulate=None: the first write to a PSUM location overwrites, later writes add (NKI's auto mode).
    region = dst.region(m)
    acc = bool(accumulate) if accumulate is not None else psum_group_open(ctx, region)
    ins = issue(
        Opcode.NC_MATMUL,
        dst,
        {"stationary": st, "moving": mv},
        lambda _: {
            "stationary": read_masked(ctx, st, None, loc),
            "moving": read_masked(ctx, mv, None, loc),
            "double_row": double_row,
            "is_transpose": transpose_mode(ctx.machine.spec.core, {"is_transpose": is_transpose}),
            "location": loc,
        },
        loc,
        params={"double_row": double_row, "is_transpose": is_transpose},
        mask=m,
        accumulate=acc,
        label="nc_matmul",
    )
    check_matmul_banks(dst, loc)  # after the record's own checks, so a wrong shape or buffer is named first
    ctx.psum_touched.add(region)
    return ins


def nc_transpose(
    dst: Any, data: Any, engine: Engine | None = None, mask: Any = None, location: str | None = None
) -> Instruction:
    """Swap partition and free axes: TensorE (<= 128x128, SBUF -> PSUM) or VectorE (<= 32x32)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "nc_transpose dst", loc)
    data = require_tensor(data, "nc_transpose data", loc)
    m = broadcast_mask(mask, dst.shape, loc)
    ins = issue(
        Opcode.NC_TRANSPOSE,
        dst,
        {"data": data},
        lambda _: {"data": read_masked(ctx, data, None, loc)},
        loc,
        engine=engine,
        mask=m,
        label="nc_transpose({engine})",
    )
    if ins.engine is Engine.TENSOR:  # a TensorE transpose is a matmul (is_transpose): its output fits one bank
        check_matmul_banks(dst, loc)
    return ins
