"""register_load: read one scalar (up to 32 bits) from HBM or SBUF into an engine sequencer's register.

NKI docs (nki.isa.register_load, register_alloc): the source is a one-element tensor; the NKI compiler
places virtual registers on the engine sequencers (64 x 32-bit registers each). trnsim runs it on the
Sync sequencer, which also drives the dynamic loops that consume registers.
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import PSUM, Call, Operand
from trnsim.isa.record import InstructionRecord


def semantics(src: np.ndarray) -> int:
    """The register's new value: the element's integer value (floats truncate toward zero)."""
    return int(np.asarray(src).reshape(-1)[0])


def scalar_rules(t: Operand, what: str, location: str) -> None:
    """A register's memory side: one element of at most 32 bits, in HBM or SBUF."""
    if t.size != 1:
        raise ShapeMismatchError(f"{what} must hold exactly one element ([1] or [1, 1]), got {t}", location)
    if t.dtype.itemsize > 4:
        raise DtypeError(f"{what} must be at most 32 bits, got {t} {t.dtype.name}", location, rule="dtype")
    if t.buffer == PSUM:
        raise UsageError(f"{what} {t} is in PSUM; registers load from and store to HBM or SBUF", location)


def check(call: Call) -> None:
    src = call.dst  # the tensor read is passed as the call's tile (it is read, not written)
    assert src is not None
    scalar_rules(src, "register_load src", call.location)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """No published cost: one sequencer instruction, the engine's minimum initiation interval."""
    return float(core.sync.min_ii_cycles)


RECORD = InstructionRecord(
    opcode=Opcode.REGISTER_LOAD,
    engines=(Engine.SYNC,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=lambda call: CostArgs(),
    source="NKI docs nki.isa.register_load; cost: MIN_II (trainium.md §3.6)",
)
