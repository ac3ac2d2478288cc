"""local_gather: gather within groups of 16 partitions (GpSimd).

NKI docs (nki.isa.local_gather and its numpy reference, test_nki_isa_local_gather.py): each of the 8
GpSimd cores owns 16 partitions. It flattens its 16-partition slice of `index` partition-first
(order='F'), keeps the first `num_valid_indices`, and every partition p of the slice reads, for each index
i, the `num_elem_per_idx` contiguous elements src[p, i : i + num_elem_per_idx] of its flattened free axis.
Indices are uint16 element offsets; dst keeps src's dtype (no cast). trnsim refuses an index that reads
past the end (the hardware's behaviour there is undefined).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import BoundsError, DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.instructions.iota import gpsimd_reachable
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

GROUP = 16  # SBUF partitions per GpSimd core (trainium.md §2: 8 processors, each wired to 16 partitions)
ELEMS_PER_INDEX = (1, 2, 4, 8, 16, 32)  # NKI docs: num_elem_per_idx
MAX_INDICES_PER_CORE = 4096  # NKI docs: "indices for gather per core must be <= 4096"


def group_indices(index: np.ndarray, valid: int) -> list[np.ndarray]:
    """Each core's valid indices: its 16 partitions of `index` flattened partition-first."""
    flat = index.reshape(index.shape[0], -1)
    return [flat[g : g + GROUP].flatten(order="F")[:valid].astype(np.int64) for g in range(0, flat.shape[0], GROUP)]


def semantics(src_buffer: np.ndarray, index: np.ndarray, num_elem_per_idx: int, num_valid_indices: int) -> np.ndarray:
    src = src_buffer.reshape(src_buffer.shape[0], -1)
    e = num_elem_per_idx
    out = np.empty((src.shape[0], num_valid_indices * e), src.dtype)
    for c, idx in enumerate(group_indices(index, num_valid_indices)):
        cols = (idx[:, None] + np.arange(e)).reshape(-1)
        out[c * GROUP : (c + 1) * GROUP] = src[c * GROUP : (c + 1) * GROUP][:, cols]
    return out


def check_bounds(src_free: int, index: np.ndarray, e: int, valid: int, location: str) -> None:
    """Values rule (functional runs): every gathered run lies inside the partition's free elements."""
    for c, idx in enumerate(group_indices(index, valid)):
        bad = idx[idx + e > src_free]
        if bad.size:
            raise BoundsError(
                f"local_gather index {int(bad[0])} (core {c}) reads {e} elements past offset {int(bad[0])}, outside "
                f"[0, {src_free}) of src_buffer's partition",
                location,
                rule="bounds",
            )


def valid_indices(call: Call) -> int:
    index = call.inputs["index"]
    given = call.param("num_valid_indices")
    return index.size // max(1, index.partitions // GROUP) if given is None else int(given)


def check(call: Call) -> None:
    dst, src, index = call.dst, call.inputs["src_buffer"], call.inputs["index"]
    assert dst is not None
    loc = call.location
    gpsimd_reachable("local_gather")(call)
    if src.partitions != index.partitions or src.partitions % GROUP:
        raise TileShapeError(
            f"local_gather src_buffer and index need the same partition count, a multiple of {GROUP}; got {src} "
            f"and {index}",
            loc,
            rule="shape",
        )
    if index.dtype != np.uint16:
        raise DtypeError(f"local_gather index must be uint16, got {index} {index.dtype.name}", loc, rule="dtype")
    if dst.dtype != src.dtype:
        raise DtypeError(
            f"local_gather keeps src_buffer's dtype {src.dtype.name} (no cast), dst {dst} is {dst.dtype.name}",
            loc,
            rule="dtype",
        )
    e = call.param("num_elem_per_idx")
    if e not in ELEMS_PER_INDEX:
        raise UsageError(f"local_gather num_elem_per_idx must be one of {ELEMS_PER_INDEX}, got {e!r}", loc)
    v, most = valid_indices(call), index.size // (index.partitions // GROUP)
    if not 1 <= v <= min(most, MAX_INDICES_PER_CORE):
        raise UsageError(
            f"local_gather num_valid_indices must be 1..{min(most, MAX_INDICES_PER_CORE)} (indices per 16-partition "
            f"slice of {index}, at most {MAX_INDICES_PER_CORE}), got {v}",
            loc,
            rule="indices",
        )
    if dst.partitions != src.partitions or dst.free != v * e:
        raise ShapeMismatchError(
            f"local_gather dst must be [{src.partitions}, {v * e}] elements (num_valid_indices {v} x "
            f"num_elem_per_idx {e} per partition), got {dst}",
            loc,
            rule="shape",
        )


def cost_args(call: Call) -> CostArgs:
    src = call.inputs["src_buffer"]
    e = int(call.param("num_elem_per_idx"))
    return CostArgs(n=valid_indices(call), p=src.partitions, elems_per_index=e, dtype_bytes=src.dtype.itemsize)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """150 + (num_valid_indices * num_elem_per_idx) / C with
    C = ((28 + t*E) / (t*E)) / min(4 / dtype_size, E) (legacy docstring, as written there)."""
    g, e = core.gpsimd, a.elems_per_index
    c = ((g.local_gather_setup_cycles + g.local_gather_t * e) / (g.local_gather_t * e)) / min(4 / a.dtype_bytes, e)
    return g.start_cycles + a.n * e / c


RECORD = InstructionRecord(
    opcode=Opcode.LOCAL_GATHER,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    source="NKI docs nki.isa.local_gather (0.6; cost from the legacy docstring, trainium.md §3.6)",
)
