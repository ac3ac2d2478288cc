"""nc_find_index8 (VectorE): dst[P, 8] = the index of each of `vals`' 8 values in its partition of `data`.

First occurrence; duplicate vals take successive occurrences in ascending order; a value that is not there
gives the all-ones sentinel of dst's dtype (NKI docs, nki.isa.nc_find_index8). nc_match_replace8 shares the
matching (nc_match_replace8.py).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

MIN_ELEMS, MAX_ELEMS = 8, 16384  # elements per partition of `data` (NKI docs)
INDEX_DTYPES = ("uint16", "uint32")


def match(row: np.ndarray, vals: np.ndarray, order: range) -> np.ndarray:
    """Position in `row` of each value of `vals`, visiting vals in `order`; -1 where none is left."""
    used: set[int] = set()
    out = np.full(len(vals), -1, dtype=np.int64)
    for i in order:
        hits = [j for j in np.flatnonzero(row == vals[i]) if int(j) not in used]
        if hits:
            out[i] = hits[0]
            used.add(int(hits[0]))
    return out


def find_index8(data: np.ndarray, vals: np.ndarray, sentinel: int) -> np.ndarray:
    flat, v = data.reshape(data.shape[0], -1), vals.reshape(vals.shape[0], -1)
    idx = np.stack([match(flat[p], v[p], range(8)) for p in range(flat.shape[0])])
    return np.where(idx < 0, sentinel, idx).astype(np.int64)


def check_data_and_vals(call: Call, what: str) -> None:
    data, vals = call.inputs["data"], call.inputs["vals"]
    if not MIN_ELEMS <= data.free <= MAX_ELEMS:
        raise TileShapeError(
            f"{what} data must have {MIN_ELEMS}..{MAX_ELEMS} elements per partition, {data} has {data.free}",
            call.location,
            rule="find8",
        )
    if vals.free != 8 or vals.partitions != data.partitions:
        raise ShapeMismatchError(
            f"{what} vals must hold 8 values per partition of data, got {vals}", call.location, rule="shape"
        )


def check_find(call: Call) -> None:
    check_data_and_vals(call, "nc_find_index8")
    dst = call.dst
    if dst is None or str(dst.dtype) not in INDEX_DTYPES or tuple(dst.shape) != (call.inputs["data"].partitions, 8):
        raise DtypeError(
            f"nc_find_index8 dst must be a [P, 8] uint16 or uint32 tile, got {dst}", call.location, rule="dtype"
        )


def find_cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """N, the data elements per partition (§3.6 max8 / nc_find_index8)."""
    return streaming(core, engine, a, lambda ii, n: n)


RECORD = InstructionRecord(
    opcode=Opcode.NC_FIND_INDEX8,
    engines=(Engine.VECTOR,),
    cycles=find_cycles,
    semantics=find_index8,
    check=check_find,
    source="trainium.md §3.6 nc_find_index8; NKI docs nki.isa.nc_find_index8",
)
