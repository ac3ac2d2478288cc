"""Builder of nc_n_gather (GpSimdE): a per-partition gather that keeps data's bits (no fp32 round trip)."""

from __future__ import annotations

from typing import Any

from trnsim.isa.instruction import Instruction
from trnsim.isa.instructions import nc_n_gather as record
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
