"""nc_stream_shuffle (VectorE): within each 32-partition quadrant, output partition i copies input partition
shuffle_mask[i]; a mask value of 255 leaves that output partition unchanged (NKI docs, nki.isa.nc_stream_shuffle).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

QUADRANT = 32  # partitions one shuffle mask covers
KEEP = 255  # mask value: leave the output partition as it is


def semantics(src: np.ndarray, prior: np.ndarray, shuffle_mask: tuple[int, ...]) -> np.ndarray:
    out = prior.astype(np.float32).copy()
    for i in range(out.shape[0]):
        m = shuffle_mask[i % QUADRANT]
        if m != KEEP:
            out[i] = src[(i // QUADRANT) * QUADRANT + m]
    return out


def check(call: Call) -> None:
    src, dst = call.inputs["src"], call.dst
    mask = call.param("shuffle_mask")
    if len(mask) != QUADRANT or any(not (0 <= m < QUADRANT or m == KEEP) for m in mask):
        raise UsageError(
            f"nc_stream_shuffle shuffle_mask must be {QUADRANT} partition indices in 0..{QUADRANT - 1} or {KEEP}, "
            f"got {list(mask)}",
            call.location,
            rule="shuffle-mask",
        )
    if dst is None or dst.dtype != src.dtype or dst.free != src.free:
        raise DtypeError(
            f"nc_stream_shuffle dst must match src's dtype and elements per partition: src {src}, dst {dst}",
            call.location,
            rule="dtype",
        )
    for i in range(dst.partitions):
        m = mask[i % QUADRANT]
        if m != KEEP and (i // QUADRANT) * QUADRANT + m >= src.partitions:
            raise ShapeMismatchError(
                f"nc_stream_shuffle output partition {i} reads input partition "
                f"{(i // QUADRANT) * QUADRANT + m}, but src {src} has {src.partitions}",
                call.location,
                rule="shuffle-mask",
            )


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(MIN_II, N) (§3.6 nc_stream_shuffle)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.NC_STREAM_SHUFFLE,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="trainium.md §3.6 nc_stream_shuffle; NKI docs nki.isa.nc_stream_shuffle",
)
