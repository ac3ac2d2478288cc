"""Allocating tiles, and retargeting fresh results into their destination.

Legacy-style calls (`nl.exp(x)`, `nl.matmul(x, y)`, `nl.load(...)`) allocate a fresh tile and issue
one instruction into it. When a fresh tile is then assigned into another tile (`t[...] = nl.exp(x)`)
or accumulated into PSUM (`psum += nl.matmul(...)`), the producing instruction is retargeted to write
there directly, as the Neuron compiler does, instead of paying for a copy.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import CapacityError, DtypeError, TileShapeError, UsageError
from trnsim.isa.instruction import Region
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.nki import spill
from trnsim.nki.block_banks import allocate_blocks, track, track_whole
from trnsim.nki.context import TraceContext, current, user_location
from trnsim.nki.indexing import ParDim
from trnsim.nki.operands import read_f32, write
from trnsim.nki.tensor import BLOCK_TENSORS, NkiTensor
from trnsim.sim.memory import MemoryKind


def new_tensor(
    shape: Any, dtype: Any, buffer: MemoryKind = MemoryKind.SBUF, name: str = "", location: str | None = None
) -> NkiTensor:
    """Allocate a tensor; SBUF/PSUM tiles are checked against the partition and PSUM-bank limits."""
    ctx = current()
    loc = location or user_location()
    raw = tuple(shape) if isinstance(shape, tuple | list) else (shape,)
    # Legacy block dims: ndarray((nblocks, nl.par_dim(128), 512)) puts blocks before the partition dim.
    par_axis = next((i for i, s in enumerate(raw) if isinstance(s, ParDim)), 0)
    try:
        shp = tuple(int(s) for s in raw)
    except (TypeError, ValueError):
        raise UsageError(f"a tensor shape must be a tuple of ints, got {shape!r}", loc) from None
    if any(s < 0 for s in shp):
        raise UsageError(f"a tensor shape cannot have negative dims, got {list(shp)}", loc)
    dt = _dtype(dtype, loc)
    spill.attach(ctx.machine, loc)
    core = ctx.machine.spec.core
    if buffer is not MemoryKind.HBM:
        if not shp:
            raise UsageError("an on-chip tile needs at least a partition dim", loc)
        if shp[par_axis] > core.sbuf.partitions:
            raise TileShapeError(
                f"tile {list(shp)} has partition dim {shp[par_axis]}, exceeds {core.sbuf.partitions} "
                "(nl.tile_size.pmax)",
                loc,
                rule="partition-dim",
            )
        if buffer is MemoryKind.PSUM:
            # One block of a block tensor (dims after the partition dim) is one PSUM tile. A tile may span every
            # bank of its partition (NKI architecture guide: "4K elements for PSUM" for VectorE/ScalarE access;
            # tile_size.psum_fmax "does not represent the free-dim size per partition", NKI 0.4); only one
            # matmul's output must fit a bank (check_matmul_banks).
            per_partition = int(np.prod(shp[par_axis + 1 :])) * dt.itemsize
            limit = core.psum.partition_bytes
            if per_partition > limit:
                raise TileShapeError(
                    f"PSUM tile {list(shp)} {dtypes.name(dt)} needs {per_partition} bytes per partition, over "
                    f"{limit} (the whole PSUM partition: {core.psum.banks} banks of {core.psum.bank_bytes} B, "
                    f"{limit // 4} fp32)",
                    loc,
                    rule="psum-partition",
                )
    if par_axis > 0 and buffer is not MemoryKind.HBM:
        # A legacy block tensor larger than the memory gets bytes block by block, by lifetime (block_banks).
        space = ctx.machine.space(buffer, ctx.core)
        # PSUM always: a matmul's fresh result tile needs a bank until it is retargeted into its block.
        whole = space.block_bytes(shp[par_axis:], dt) * int(np.prod(shp[:par_axis]))
        if buffer is MemoryKind.PSUM or whole > space.capacity:
            return NkiTensor(allocate_blocks(ctx.machine, buffer, shp, dt, name, ctx.core, par_axis))
        try:
            alloc = ctx.machine.allocate(buffer, shp, dt, name, ctx.core, loc, par_axis)
            BLOCK_TENSORS.add(alloc)
            return NkiTensor(alloc)
        except CapacityError:
            return NkiTensor(allocate_blocks(ctx.machine, buffer, shp, dt, name, ctx.core, par_axis))
    alloc = ctx.machine.allocate(buffer, shp, dt, name, ctx.core, loc, par_axis)
    if buffer is MemoryKind.PSUM:
        track_whole(alloc, ctx.machine.space(buffer, ctx.core))
    return NkiTensor(alloc)


# Tiles a kernel placed itself (nl.ndarray(..., address=...)), per memory space and address.
_PLACED: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], weakref.ref[Any]]] = weakref.WeakKeyDictionary()


def new_placed_tensor(shape: Any, dtype: Any, buffer: MemoryKind, name: str, address: tuple[int, ...]) -> NkiTensor:
    """`nl.ndarray(..., address=...)`: the kernel places the tile itself, so a tile it placed earlier at the same
    address is over and its bytes go to the new one (e.g. one PSUM bank per loop iteration, allocated anew each
    time while the last iteration's tile is still referenced). The new tile waits for the old one's last access."""
    if buffer is MemoryKind.HBM:
        return new_tensor(shape, dtype, buffer, name)
    ctx = current()
    space = ctx.machine.space(buffer, ctx.core)
    placed = _PLACED.setdefault(space, {})
    earlier = placed.get(address)
    if earlier is not None and (alloc := earlier()) is not None:
        space.release_now(alloc)
    t = new_tensor(shape, dtype, buffer, name)
    placed[address] = weakref.ref(t.alloc.root)
    return t


def _dtype(dtype: Any, loc: str) -> np.dtype[Any]:
    """dtypes.resolve, with the kernel's line on the error."""
    try:
        return dtypes.resolve(dtype)
    except DtypeError as err:
        raise DtypeError(err.bare_message, loc, rule="dtype") from None


def new_shared_hbm(shape: Any, dtype: Any, name: str = "") -> NkiTensor:
    """An nl.shared_hbm tensor: the same memory for every SPMD program of the launch."""
    ctx = current()
    k = ctx.shared_count
    ctx.shared_count += 1
    if k < len(ctx.shared_hbm):
        t: NkiTensor = ctx.shared_hbm[k]
        shp = tuple(int(s) for s in shape)
        if tuple(t.shape) != shp or t.dtype != dtypes.resolve(dtype):
            raise UsageError(
                f"program {list(ctx.program_id)} creates shared_hbm tensor #{k} as {list(shp)}, but program 0 made "
                f"it {list(t.shape)} {dtypes.name(t.dtype)}: every program must create the same shared tensors",
                user_location(),
            )
        return NkiTensor(t.alloc)
    t = new_tensor(shape, dtype, MemoryKind.HBM, name)
    ctx.shared_hbm.append(t)
    return t


def _mark_fresh(ctx: TraceContext, t: NkiTensor) -> NkiTensor:
    ctx.fresh[t.alloc.id] = len(ctx.machine.instructions) - 1
    return t


def _retarget(ctx: TraceContext, dst: NkiTensor, value: NkiTensor, accumulate: bool) -> bool:
    """Make the instruction that produced fresh `value` write into `dst` instead. False if it can't."""
    idx = ctx.fresh.get(value.alloc.id)
    instrs = ctx.machine.instructions
    if idx is None or idx != len(instrs) - 1 or not value.is_whole or not _same_dims(value.shape, dst.shape):
        return False  # a different shape goes through the copy path, which says what does not match
    ins = instrs[idx]
    allowed = {
        Opcode.NC_MATMUL: (MemoryKind.PSUM,),
        Opcode.DMA_COPY: (MemoryKind.SBUF, MemoryKind.HBM),
    }.get(ins.opcode, (MemoryKind.SBUF,) if ins.engine is Engine.GPSIMD else (MemoryKind.SBUF, MemoryKind.PSUM))
    if dst.buffer not in allowed or (accumulate and ins.opcode is not Opcode.NC_MATMUL):
        return False
    spiller = spill.get(ctx.machine)
    if spiller is not None and spiller.holds(dst):
        return False  # dst (or a block of it) is spilled: the copy path refills it first
    del ctx.fresh[value.alloc.id]
    if dst.alloc.blocks is not None and dst.alloc.blocks.par_axis > 0 and value.buffer is not MemoryKind.HBM:
        # the fresh tile is never written now: its bytes are free for the block (the compiler writes there)
        ctx.machine.space(value.buffer, ctx.core).release_now(value.alloc)
    region = dst.region()  # the whole box in both modes: lanes written are known only with values
    if ins.opcode is Opcode.NC_MATMUL or (ins.opcode is Opcode.NC_TRANSPOSE and ins.engine is Engine.TENSOR):
        check_matmul_banks(dst, ins.location)
    if ins.opcode is Opcode.NC_MATMUL:
        # `psum[i] += nl.matmul(...)` into a location no matmul group is open on (never written, or its
        # last sum read out) starts a group, which overwrites: NKI's rule (psum_group_open), so an
        # uninitialised nl.ndarray PSUM accumulator works as on the hardware.
        accumulate = accumulate and psum_group_open(ctx, region)
        ctx.psum_touched.add(region)
    n_before = len(instrs)
    track([dst] if accumulate else [], [dst], ins.location)
    if len(instrs) > n_before:  # spills that made room for dst go before the instruction that now writes it
        instrs.append(instrs.pop(idx))
        if spiller is not None:
            spiller.after_track(ins)
    # A masked producer (`nl.load(..., mask=...)`) wrote only some lanes of the fresh tile: only those lanes
    # reach `dst`, the others keep what `dst` held (they are not the fresh tile's poison).
    mask = _written_lanes(value, dst.shape)
    ins.writes = (region, *ins.writes[1:])
    ins.touches_psum = ins.touches_psum or dst.buffer is MemoryKind.PSUM
    if accumulate:
        ins.reads = (*ins.reads, region)
    if ctx.machine.functional:
        vals = read_f32(ctx, value, _written_lanes(value, value.shape), ins.location).reshape(dst.shape)
        if accumulate:
            vals = read_f32(ctx, dst, mask, ins.location) + vals
        write(dst, vals, mask)
    return True


def _same_dims(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Same shape up to size-1 dims ([128, 1] into [128]); same element count alone is not enough."""
    return tuple(s for s in a if s != 1) == tuple(s for s in b if s != 1)


def _written_lanes(fresh: NkiTensor, shape: tuple[int, ...]) -> np.ndarray | None:
    """Which elements of a fresh tile its producer wrote, shaped `shape`; None when it wrote all of them."""
    alloc = fresh.alloc
    if alloc.root.fully_written or alloc.storage is None:
        return None
    written = alloc.written_mask()
    return np.zeros(shape, dtype=bool) if written is None else written.reshape(shape)


def _same_view(a: NkiTensor, b: NkiTensor) -> bool:
    """Whether two views select the same elements of the same allocation (each `t[i]` is a new view object)."""
    if a.alloc.id != b.alloc.id or len(a.key) != len(b.key):
        return False
    for x, y in zip(a.key, b.key):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape):
                return False
            if not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


_MATMULS = (Opcode.NC_MATMUL, Opcode.NC_MATMUL_MX)  # TensorE writes that open an accumulation group
_SPILL_LABELS = ("spill", "refill")  # nki/spill.py


def psum_group_open(ctx: TraceContext, region: Region) -> bool:
    """Whether an nc_matmul with accumulate=None into `region` adds to it (True) or overwrites it (False).

    NKI's rule (nki.isa.nc_matmul, "Accumulation mode"): the first matmul into a PSUM location overwrites,
    later ones accumulate, and `accumulate=(i > 0)` spells out the same thing for a loop. A PSUM tile reused
    for the next output tile (allocated once, outside the loop) starts over: once anything other than a
    matmul has read or written the location (the finished sum copied out, a memset), the accumulation group
    is closed and the next matmul overwrites, instead of adding the previous tile's sum.
    """
    if region not in ctx.psum_touched:
        return False
    for ins in reversed(ctx.machine.instructions):  # back to the last instruction that touched it
        if ins.core != ctx.core or ins.label in _SPILL_LABELS:  # a compiler spill/refill keeps the group as it was
            continue
        if any(_boxes_overlap(region, w) for w in ins.writes):
            return ins.opcode in _MATMULS
        if any(_boxes_overlap(region, r) for r in ins.reads):
            return False
    return False


def _boxes_overlap(a: Region, b: Region) -> bool:
    return a[0] == b[0] and all(a[i] < b[i + 1] and b[i] < a[i + 1] for i in (1, 3, 5))


def check_matmul_banks(dst: NkiTensor, location: str) -> None:
    """One matmul output lies within `max_tile_banks` PSUM banks (one on NC-v2/v3, all eight on NC-v4).

    NKI docs (nki.isa.nc_matmul "Tile size"; architecture guide: "each nc_matmul can only write to a single PSUM
    bank"): a PSUM tile may be wider than a bank and starts at a bank boundary, so a matmul into a column slice
    of it is legal when the slice stays inside one bank, e.g. columns 512..1023 of a [128, 1024] fp32 tile.
    """
    if dst.buffer is not MemoryKind.PSUM:
        return
    span = _free_byte_span(dst)
    if span is None:
        return
    psum = current().machine.spec.core.psum
    lo, hi = span
    first, last = lo // psum.bank_bytes, (hi - 1) // psum.bank_bytes
    if last - first + 1 > psum.max_tile_banks:
        raise TileShapeError(
            f"nc_matmul writes bytes {lo}..{hi - 1} of each partition of {dst.alloc.root.describe()} (dst {dst}), "
            f"across PSUM banks {first}..{last}; one matmul output must fit {psum.max_tile_banks} bank(s) of "
            f"{psum.bank_bytes} B (nl.tile_size.psum_bank_fmax = {psum.bank_bytes // 4} fp32): start each matmul's "
            f"columns at a multiple of {psum.bank_bytes // 4} fp32",
            location,
            rule="psum-bank",
        )


def _free_byte_span(view: NkiTensor) -> tuple[int, int] | None:
    """Bytes [lo, hi) a view covers in each partition of its PSUM tile (of its block, for a block tensor).

    Taken from the view's bounding box, so a strided view counts from its first to its last element. None
    when the layout gives no such span (a tile without free dims, blocks over more than one leading dim).
    """
    root = view.alloc.root
    par_axis = root.blocks.par_axis if root.blocks is not None else 0
    _, r0, r1, c0, c1, e0, e1 = view.region()
    if r1 <= r0 or c1 <= c0 or e1 <= e0:
        return None
    item = root.dtype.itemsize
    if par_axis == 0 and len(root.shape) > 1:
        rest = int(np.prod(root.shape[2:]))
        return (c0 * rest + e0) * item, ((c1 - 1) * rest + e1) * item
    if par_axis == 1 and len(root.shape) > 2:
        return e0 * item, e1 * item
    return None
