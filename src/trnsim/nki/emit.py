"""Issuing instructions: check the hardware rules, record the instruction, compute its values.

Both NKI API styles end here: `nki.isa` (dst first) and the legacy functional calls (which allocate
a fresh destination first). Cycle counts come from isa/cost.py and values from isa/semantics.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost import CostArgs, compute_cycles
from trnsim.isa.instruction import Instruction, Region
from trnsim.isa.opcodes import ALLOWED_ENGINES, Engine, Opcode
from trnsim.nki.context import TraceContext, current, user_location
from trnsim.nki.operands import (
    broadcast_mask,
    check_partitions,
    masked_extent,
    read_f32,
    read_masked,
    read_stored,
    require_on_chip,
    require_tensor,
    write,
)
from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import MemoryKind

Compute = Callable[[], np.ndarray]


def pick_engine(op: Opcode, engine: Engine | None, location: str, operands: list[NkiTensor]) -> Engine:
    allowed = ALLOWED_ENGINES[op]
    if engine is None:
        # GpSimd cannot reach PSUM, so never pick it by default when PSUM is involved.
        return allowed[0]
    if engine not in allowed:
        names = ", ".join(e.key for e in allowed)
        raise UsageError(f"{op.key} cannot run on the {engine.key} engine; allowed: {names}", location, rule="engine")
    if engine is Engine.GPSIMD and any(t.buffer is MemoryKind.PSUM for t in operands):
        raise UsageError("the GpSimd engine cannot access PSUM", location, rule="gpsimd-psum")
    return engine


def issue(
    ctx: TraceContext,
    op: Opcode,
    engine: Engine,
    dst: NkiTensor,
    srcs: list[NkiTensor],
    cost: CostArgs,
    compute: Compute | None,
    location: str,
    mask: np.ndarray | None = None,
    label: str = "",
    flops: int = 0,
    extra_reads: tuple[Region, ...] = (),
    accumulate: bool = False,
    src_mask: np.ndarray | None = None,
) -> Instruction:
    machine = ctx.machine
    smask = mask if src_mask is None else src_mask

    def for_src(t: NkiTensor) -> np.ndarray | None:
        return smask if smask is not None and t.shape == smask.shape else None

    dst.check_bounds(mask, location)
    for t in srcs:
        t.check_bounds(for_src(t), location)
        ctx.fresh.pop(t.alloc.id, None)
    reads = tuple(t.region(for_src(t)) for t in srcs) + extra_reads
    if accumulate:
        reads = (*reads, dst.region(mask))
    ins = Instruction(
        opcode=op,
        engine=engine,
        core=ctx.core,
        reads=reads,
        writes=(dst.region(mask),),
        cycles=compute_cycles(op, engine, machine.spec.core, cost),
        flops=flops,
        touches_psum=any(t.buffer is MemoryKind.PSUM for t in (dst, *srcs)),
        touches_sbuf=any(t.buffer is MemoryKind.SBUF for t in (dst, *srcs)),
        accumulate=accumulate,
        location=location,
        label=label or op.key,
    )
    machine.emit(ins)
    if machine.functional and compute is not None:
        values = compute()
        if accumulate:
            values = read_f32(ctx, dst, mask, location) + np.asarray(values).reshape(dst.shape)
        write(dst, values, mask)
    return ins


# -- DMA ---------------------------------------------------------------------------------------------
def dma_copy(dst: Any, src: Any, mask: Any = None, location: str | None = None) -> Instruction:
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "dma_copy dst", loc)
    src = require_tensor(src, "dma_copy src", loc)
    for t, what in ((dst, "dma_copy dst"), (src, "dma_copy src")):
        if t.buffer is MemoryKind.PSUM:
            raise UsageError(
                f"{what} is in PSUM; DMA moves HBM and SBUF only: copy PSUM to SBUF first", loc, rule="buffer"
            )
        check_partitions(t, ctx.machine.spec.core, what, loc)
    if dst.size != src.size:
        raise ShapeMismatchError(
            f"dma_copy moves {src.size} elements {list(src.shape)} into {dst.size} elements {list(dst.shape)}; "
            "element counts must match",
            loc,
            rule="shape",
        )
    m = broadcast_mask(mask, dst.shape, loc)
    n_elems = dst.size if m is None else int(m.sum())
    nbytes = n_elems * max(src.dtype.itemsize, dst.dtype.itemsize)
    sbuf_side = dst if dst.buffer is MemoryKind.SBUF else src
    rows = sbuf_side.partition_size() if sbuf_side.buffer is MemoryKind.SBUF else (dst.shape[0] if dst.shape else 1)
    if m is not None:
        rows = masked_extent(m, dst.shape)[0]
    run = min(src.contiguous_run_bytes(), dst.contiguous_run_bytes())
    hbm = sum(n_elems * t.dtype.itemsize for t in (src, dst) if t.buffer is MemoryKind.HBM)
    src.check_bounds(m if src.shape == dst.shape else None, loc)
    dst.check_bounds(m, loc)
    ctx.fresh.pop(src.alloc.id, None)
    ins = Instruction(
        opcode=Opcode.DMA_COPY,
        engine=Engine.DMA,
        core=ctx.core,
        reads=(src.region(m if src.shape == dst.shape else None),),
        writes=(dst.region(m),),
        dma_bytes=nbytes,
        dma_rows=max(1, rows),
        dma_row_bytes=run,
        hbm_bytes=hbm,
        location=loc,
        label=f"dma {src.buffer}->{dst.buffer}",
    )
    ctx.machine.emit(ins)
    if ctx.machine.functional:
        # A DMA moves bytes: same-dtype copies are bit-exact; a dtype change goes through fp32.
        read = read_stored if src.dtype == dst.dtype else read_f32
        vals = read(ctx, src, m if src.shape == dst.shape else None, loc)
        write(dst, sem.dma_copy(vals).reshape(dst.shape), m)
    return ins


# -- TensorE -----------------------------------------------------------------------------------------
def check_matmul_limits(core: CoreSpec, k: int, n_stationary: int, n_moving: int, loc: str) -> None:
    """The PE array's limits: contraction <= pmax, stationary free <= 128, moving free <= 512 (one PSUM bank).

    Legacy calls check this before allocating their PSUM result, so the error names the matmul rule.
    """
    for size, limit, what, name in (
        (k, core.tensor.pe_rows, "stationary partition (contraction) dim", "pmax"),
        (n_stationary, core.tensor.pe_cols, "stationary free size", "gemm_stationary_fmax"),
        (n_moving, core.tensor.moving_fmax, "moving free size", "gemm_moving_fmax"),
    ):
        if size > limit:
            raise TileShapeError(f"nc_matmul {what} {size} exceeds {limit} (nl.tile_size.{name})", loc, rule=name)


def nc_matmul(
    dst: Any,
    stationary: Any,
    moving: Any,
    accumulate: bool | None = None,
    double_row: bool = False,
    mask: Any = None,
    location: str | None = None,
) -> Instruction:
    ctx = current()
    loc = location or user_location()
    core = ctx.machine.spec.core
    dst = require_tensor(dst, "nc_matmul dst", loc)
    st = require_tensor(stationary, "nc_matmul stationary", loc)
    mv = require_tensor(moving, "nc_matmul moving", loc)
    require_on_chip(st, "nc_matmul stationary", loc, allow_psum=False)
    require_on_chip(mv, "nc_matmul moving", loc, allow_psum=False)
    if dst.buffer is not MemoryKind.PSUM:
        raise UsageError(f"nc_matmul writes to PSUM, but dst {dst!r} is in {dst.buffer.upper()}", loc, rule="buffer")
    allowed_out = [dtypes.resolve(d) for d in core.tensor.psum_output_dtypes]
    if dst.dtype not in allowed_out:
        names = ", ".join(dtypes.name(d) for d in allowed_out)
        raise DtypeError(
            f"nc_matmul writes {names} into PSUM on NeuronCore-v{core.nc_version}, but dst is "
            f"{dtypes.name(dst.dtype)}; allocate the PSUM tile as nl.float32 and cast when copying it out",
            loc,
            rule="matmul-dtype",
        )
    fp32_like = {dtypes.float32}
    if (st.dtype in fp32_like) != (mv.dtype in fp32_like):
        raise DtypeError(
            f"nc_matmul mixes {dtypes.name(st.dtype)} stationary with {dtypes.name(mv.dtype)} moving; if one input "
            "is fp32/tf32 the other must be too",
            loc,
            rule="matmul-dtype",
        )
    for t, what in ((st, "stationary"), (mv, "moving")):
        if not dtypes.is_float(t.dtype):
            raise DtypeError(
                f"nc_matmul {what} must be a float type, got {dtypes.name(t.dtype)}", loc, rule="matmul-dtype"
            )
    k_st, k_mv = st.partition_size(), mv.partition_size()
    n_st, n_mv = st.free_size(), mv.free_size()
    if double_row:
        if not core.tensor.fp8_double_row:
            raise UsageError("matmul_perf_mode.double_row needs NeuronCore-v3 or newer", loc, rule="double-row")
        if st.dtype not in dtypes.FP8_DTYPES or mv.dtype not in dtypes.FP8_DTYPES:
            raise DtypeError("double_row matmul takes fp8 inputs only", loc, rule="double-row")
        if st.ndim != 3 or mv.ndim != 3 or st.shape[1] != 2 or mv.shape[1] != 2:
            raise TileShapeError(
                "double_row matmul takes stationary [K, 2, M] and moving [K, 2, N]", loc, rule="double-row"
            )
        n_st, n_mv = st.shape[2], mv.shape[2]
    check_matmul_limits(core, k_st, n_st, n_mv, loc)
    if k_st != k_mv:
        raise ShapeMismatchError(
            f"nc_matmul contraction dims differ: stationary has {k_st} partitions, moving has {k_mv}",
            loc,
            rule="contraction",
        )
    if dst.partition_size() != n_st or dst.free_size() != n_mv:
        raise ShapeMismatchError(
            f"nc_matmul dst must be [{n_st}, {n_mv}] (stationary free x moving free), got {list(dst.shape)}",
            loc,
            rule="shape",
        )
    m = broadcast_mask(mask, dst.shape, loc)
    k = k_st * (2 if double_row else 1)
    # accumulate=None: the first write to a PSUM location overwrites, later writes add (NKI's auto mode).
    region = dst.region(m)
    acc = bool(accumulate) if accumulate is not None else region in ctx.psum_touched
    ctx.psum_touched.add(region)
    cost = CostArgs(n_stationary=n_st, n_moving=n_mv, fp32_matmul=st.dtype in fp32_like, p=k_st)
    return issue(
        ctx,
        Opcode.NC_MATMUL,
        Engine.TENSOR,
        dst,
        [st, mv],
        cost,
        lambda: sem.nc_matmul(read_masked(ctx, st, None, loc), read_masked(ctx, mv, None, loc), double_row),
        loc,
        m,
        label="nc_matmul",
        flops=2 * k * n_st * n_mv,
        accumulate=acc,
    )


def nc_transpose(
    dst: Any, data: Any, engine: Engine | None = None, mask: Any = None, location: str | None = None
) -> Instruction:
    """Swap partition and free axes: TensorE (<= 128x128, SBUF -> PSUM) or VectorE (<= 32x32)."""
    ctx = current()
    loc = location or user_location()
    dst = require_tensor(dst, "nc_transpose dst", loc)
    data = require_tensor(data, "nc_transpose data", loc)
    eng = pick_engine(Opcode.NC_TRANSPOSE, engine, loc, [dst, data])
    p, f = data.partition_size(), data.free_size()
    core = ctx.machine.spec.core
    limit = core.tensor.pe_cols if eng is Engine.TENSOR else core.vector.transpose_max
    if p > limit or f > limit:
        raise TileShapeError(
            f"nc_transpose on the {eng.key} engine handles at most [{limit}, {limit}], got {list(data.shape)}",
            loc,
            rule="transpose-size",
        )
    if dst.partition_size() != f or dst.free_size() != p:
        raise ShapeMismatchError(f"nc_transpose dst must be [{f}, {p}], got {list(dst.shape)}", loc, rule="shape")
    if eng is Engine.TENSOR:
        require_on_chip(data, "nc_transpose data", loc, allow_psum=False)
        if dst.buffer is not MemoryKind.PSUM:
            raise UsageError("nc_transpose on the tensor engine writes to PSUM", loc, rule="buffer")
    m = broadcast_mask(mask, dst.shape, loc)
    cost = CostArgs(n=f, p=p)
    return issue(
        ctx,
        Opcode.NC_TRANSPOSE,
        eng,
        dst,
        [data],
        cost,
        lambda: sem.nc_transpose(read_masked(ctx, data, None, loc)),
        loc,
        m,
        label=f"nc_transpose({eng.key})",
    )
