"""Builders of GpSimdE index instructions: nc_n_gather (a per-partition gather that keeps data's bits, no fp32
round trip) and sequence_bounds (run bounds of segment ids)."""

from __future__ import annotations

from typing import Any

from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import nc_n_gather as record
from trnsim.isa.instructions import sequence_bounds as bounds_record
from trnsim.isa.opcodes import Opcode
from trnsim.nki.context import current, user_location
from trnsim.nki.issue import issue
from trnsim.nki.operands import check_tile, read_stored, require_tensor


def nc_n_gather(dst: Any, data: Any, indices: Any, location: str | None = None) -> Instruction:
    ctx = current()
    loc = location or user_location()
    tiles = {}
    for name, t in (("dst", dst), ("data", data), ("indices", indices)):
        tiles[name] = require_tensor(t, f"nc_n_gather {name}", loc)
        check_tile(ctx, tiles[name], f"nc_n_gather {name}", loc)
    out, src, idx = tiles["dst"], tiles["data"], tiles["indices"]
    return issue(
        Opcode.NC_N_GATHER,
        out,
        {"data": src, "indices": idx},
        None,
        loc,
        extent=(out.partition_size(), out.free_size()),
        label="nc_n_gather",
        compute=lambda: record.semantics(
            read_stored(ctx, src, None, loc), read_stored(ctx, idx, None, loc), loc
        ).reshape(out.shape),
    )


def sequence_bounds(dst: Any, segment_ids: Any, location: str | None = None) -> Instruction:
    """[1, 2, N] run bounds of a [1, N] segment-id tile (GpSimdE)."""
    ctx = current()
    loc = location or user_location()
    out = require_tensor(dst, "sequence_bounds dst", loc)
    ids = require_tensor(segment_ids, "sequence_bounds segment_ids", loc)
    for t, what in ((out, "dst"), (ids, "segment_ids")):
        check_tile(ctx, t, f"sequence_bounds {what}", loc)
    return issue(
        Opcode.SEQUENCE_BOUNDS,
        out,
        {"segment_ids": ids},
        None,
        loc,
        extent=(1, ids.free_size()),
        label="sequence_bounds",
        compute=lambda: bounds_record.semantics(read_stored(ctx, ids, None, loc)).reshape(out.shape),
    )
