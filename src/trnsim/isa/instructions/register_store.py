"""register_store: write a sequencer register's value into a one-element HBM or SBUF tensor (NKI docs
nki.isa.register_store). Runs on the Sync sequencer, as register_load does."""

from __future__ import annotations

import numpy as np

from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.instructions.register_load import scalar_rules
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord


def semantics(value: int) -> np.ndarray:
    return np.array([value], np.int64)


def check(call: Call) -> None:
    assert call.dst is not None
    scalar_rules(call.dst, "register_store dst", call.location)


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """No published cost: one sequencer instruction, the engine's minimum initiation interval."""
    return float(core.sync.min_ii_cycles)


RECORD = InstructionRecord(
    opcode=Opcode.REGISTER_STORE,
    engines=(Engine.SYNC,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=lambda call: CostArgs(),
    source="NKI docs nki.isa.register_store; cost: MIN_II (trainium.md §3.6)",
)
