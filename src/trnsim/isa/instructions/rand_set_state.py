"""rand_set_state: load the engine's per-lane XORWOW states from a uint32 SBUF tile [P, 6] (GpSimd) or
[P, 24] (VectorE, NC-v4+); partition i seeds compute lane i (NKI docs nki.isa.rand_set_state)."""

from __future__ import annotations

import numpy as np

from trnsim.errors import DtypeError, ShapeMismatchError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.instructions.rng import STATE_WORDS, WORDS_PER_LANE, require_engine_generation
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call, Operand
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import require_buffer


def semantics(src_seeds: np.ndarray) -> np.ndarray:
    """The lanes' new states [P, generators, 6] from the seed words [P, 6 * generators]."""
    words = np.asarray(src_seeds).astype(np.uint32)
    return words.reshape(words.shape[0], -1, STATE_WORDS)


def state_tile_rules(t: Operand, call: Call, what: str) -> None:
    """A state tile: uint32, WORDS_PER_LANE[engine] words per partition, at most one per lane."""
    if t.dtype != np.uint32:
        raise DtypeError(f"{what} must be uint32, got {t} {t.dtype.name}", call.location, rule="dtype")
    words = WORDS_PER_LANE[call.engine]
    if t.free != words or t.partitions > call.core.sbuf.partitions:
        raise ShapeMismatchError(
            f"{what} holds {words} XORWOW state words per partition on the {call.engine.key} engine, got {t}",
            call.location,
            rule="shape",
        )


def check(call: Call) -> None:
    src = call.inputs["src_seeds"]
    require_engine_generation(call, "rand_set_state", gpsimd_from=3, vector_from=4)
    require_buffer(src, "rand_set_state src_seeds", call.location, allow_psum=False)
    state_tile_rules(src, call, "rand_set_state src_seeds")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """No published cost: the engine's streaming rule over the state words per partition."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.RAND_SET_STATE,
    engines=(Engine.GPSIMD, Engine.VECTOR),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="NKI docs nki.isa.rand_set_state; cost: engine streaming rule (trainium.md §3.6-3.7)",
)
