"""rand_get_state: store the engine's per-lane XORWOW states into a uint32 tile [P, 6] (GpSimd, SBUF) or
[P, 24] (VectorE, NC-v4+, SBUF/PSUM); partition i gets compute lane i (NKI docs nki.isa.rand_get_state)."""

from __future__ import annotations

import numpy as np

from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.instructions.rand_set_state import state_tile_rules
from trnsim.isa.instructions.rng import require_engine_generation
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import require_buffer


def semantics(state: np.ndarray) -> np.ndarray:
    """The state words [P, 6 * generators] of lanes [P, generators, 6]."""
    return np.asarray(state, np.uint32).reshape(state.shape[0], -1)


def check(call: Call) -> None:
    dst = call.dst
    assert dst is not None
    require_engine_generation(call, "rand_get_state", gpsimd_from=3, vector_from=4)
    require_buffer(dst, "rand_get_state dst", call.location, allow_psum=call.engine is Engine.VECTOR)
    state_tile_rules(dst, call, "rand_get_state dst")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """No published cost: the engine's streaming rule over the state words per partition."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.RAND_GET_STATE,
    engines=(Engine.GPSIMD, Engine.VECTOR),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="NKI docs nki.isa.rand_get_state; cost: engine streaming rule (trainium.md §3.6-3.7)",
)
