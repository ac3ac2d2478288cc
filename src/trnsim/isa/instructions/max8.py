"""max8: dst[P, 8] = the 8 largest values of each partition of src, in descending order (VectorE)."""

from __future__ import annotations

import numpy as np

from trnsim.errors import ShapeMismatchError, TileShapeError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord

# elements per partition one max8 reads (NKI docs, nki.isa.max8: "between 8 and 16,384 inclusive")
MIN_ELEMS, MAX_ELEMS = 8, 16384


def semantics(src: np.ndarray) -> np.ndarray:
    flat = src.reshape(src.shape[0], -1).astype(np.float32)
    return -np.sort(-flat, axis=1)[:, :8]


def check(call: Call) -> None:
    src = call.inputs["src"]
    if not MIN_ELEMS <= src.free <= MAX_ELEMS:
        raise TileShapeError(
            f"max8 reads {MIN_ELEMS}..{MAX_ELEMS} elements per partition, {src} has {src.free}",
            call.location,
            rule="max8",
        )
    dst = call.dst
    if dst is None or tuple(dst.shape) != (src.partitions, 8):
        raise ShapeMismatchError(f"max8 dst must be [{src.partitions}, 8], got {dst}", call.location, rule="shape")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """N, the elements per partition it reads (§3.6 max8)."""
    return streaming(core, engine, a, lambda ii, n: n)


RECORD = InstructionRecord(
    opcode=Opcode.MAX8,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="trainium.md §3.6 max8; NKI docs nki.isa.max8",
)
