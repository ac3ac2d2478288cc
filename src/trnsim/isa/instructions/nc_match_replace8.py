"""nc_match_replace8 (VectorE): replace the first occurrence of each of `vals`' 8 values with `imm`.

vals are matched in reverse order (i = 7 .. 0), so duplicates pair with positions in descending order across
dst_idx's columns; dst gets `data` with the matched elements replaced, dst_idx (when given) their positions
(NKI docs, nki.isa.nc_match_replace8).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import DtypeError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.instructions.nc_find_index8 import INDEX_DTYPES, check_data_and_vals, match
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord


def match_replace8(data: np.ndarray, vals: np.ndarray, imm: float) -> np.ndarray:
    flat, v = data.reshape(data.shape[0], -1).astype(np.float32), vals.reshape(vals.shape[0], -1)
    out = flat.copy()
    for p in range(flat.shape[0]):
        idx = match(flat[p], v[p], range(7, -1, -1))
        out[p, idx[idx >= 0]] = np.float32(imm)
    return out.reshape(data.shape)


def match_indices8(data: np.ndarray, vals: np.ndarray, sentinel: int) -> np.ndarray:
    """dst_idx of nc_match_replace8."""
    flat, v = data.reshape(data.shape[0], -1), vals.reshape(vals.shape[0], -1)
    idx = np.stack([match(flat[p], v[p], range(7, -1, -1)) for p in range(flat.shape[0])])
    return np.where(idx < 0, sentinel, idx).astype(np.int64)


def check_replace(call: Call) -> None:
    check_data_and_vals(call, "nc_match_replace8")
    idx = call.outputs.get("dst_idx")
    if idx is not None and (str(idx.dtype) not in INDEX_DTYPES or idx.free != 8):
        raise DtypeError(
            f"nc_match_replace8 dst_idx must be a [P, 8] uint16 or uint32 tile, got {idx}", call.location, rule="dtype"
        )


def replace_cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """min(MIN_II, N), as the NKI cost table writes it for nc_match_replace8 (§3.6)."""
    return streaming(core, engine, a, lambda ii, n: min(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.NC_MATCH_REPLACE8,
    engines=(Engine.VECTOR,),
    cycles=replace_cycles,
    semantics=match_replace8,
    check=check_replace,
    source="trainium.md §3.6 nc_match_replace8 (cost as written there); NKI docs nki.isa.nc_match_replace8",
)
