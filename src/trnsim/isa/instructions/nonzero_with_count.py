"""nonzero_with_count (GpSimd, NC-v3+): per GpSimd core, the indices of src's nonzero elements, then padding,
then their count.

Each of the eight GpSimd cores reads and writes only the first partition of its 16 (partitions 0, 16, ...,
112); dst's other partitions keep their values (NKI docs, nki.isa.nonzero_with_count). The docs give no
cycle figure, so it is costed by the GpSimd rule every GpSimd instruction follows (start-up + N, §3.6).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

PARTITIONS_PER_GPSIMD_CORE = 16  # NKI docs: each GpSimd core connects to 16 contiguous SBUF partitions


def semantics(src: np.ndarray, prior: np.ndarray, index_offset: int = 0, padding_val: float = -1) -> np.ndarray:
    out = prior.astype(np.float32).copy()
    flat = src.reshape(src.shape[0], -1)
    t = flat.shape[1]
    for p in range(0, flat.shape[0], PARTITIONS_PER_GPSIMD_CORE):
        idx = np.flatnonzero(flat[p] != 0)
        row = np.full(t + 1, padding_val, dtype=np.float64)
        row[: idx.size] = idx + index_offset
        row[t] = idx.size
        out[p] = row
    return out


def check(call: Call) -> None:
    if call.core.nc_version < 3:
        raise UsageError("nonzero_with_count needs NeuronCore-v3 or newer", call.location, rule="nc-version")
    src, dst = call.inputs["src"], call.dst
    if dst is None or dst.partitions != src.partitions or dst.free != src.free + 1:
        raise ShapeMismatchError(
            f"nonzero_with_count dst must be [{src.partitions}, {src.free + 1}] (one more element than src "
            f"for the count), got {dst}",
            call.location,
            rule="shape",
        )


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """GpSimd start-up + N (no documented figure of its own)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.NONZERO_WITH_COUNT,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="NKI docs nki.isa.nonzero_with_count; cost: trainium.md §3.6 GpSimd start-up + N",
)
