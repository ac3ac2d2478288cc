"""set_rng_seed: seed VectorE's generators from one 32-bit value in a [1, 1] SBUF/PSUM tile (NKI docs
nki.isa.set_rng_seed). Every lane's generators are initialised from it (isa/instructions/rng.py
seeded_state), so the same seed gives the same rng/rand2/dropout draws afterwards."""

from __future__ import annotations

import numpy as np

from trnsim.errors import DtypeError, ShapeMismatchError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.instructions.rng import generators_per_lane, seeded_state
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import require_buffer


def semantics(seed: np.ndarray, lanes: int) -> np.ndarray:
    """VectorE's new state [lanes, generators, 6] from the seed tile's 32 bits."""
    raw = np.asarray(seed).reshape(-1)[:1]
    value = int(raw.view(np.uint32)[0]) if raw.dtype.itemsize == 4 else int(raw[0])
    return seeded_state(value, lanes, generators_per_lane(Engine.VECTOR))


def check(call: Call) -> None:
    src = call.inputs["src_seeds"]
    require_buffer(src, "set_rng_seed src_seeds", call.location)
    if src.size != 1:
        raise ShapeMismatchError(
            f"set_rng_seed src_seeds must be a [1, 1] tile, got {src}", call.location, rule="shape"
        )
    if src.dtype.itemsize != 4:
        raise DtypeError(
            f"set_rng_seed src_seeds must hold a 32-bit value, got {src} {src.dtype.name}",
            call.location,
            rule="dtype",
        )


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """No published cost: it reads one element, so the engine's instruction minimum, max(MIN_II, 1)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.SET_RNG_SEED,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="NKI docs nki.isa.set_rng_seed; cost: VectorE MIN_II (trainium.md §3.6)",
)
