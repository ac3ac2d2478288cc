"""rand2: uniform fp32 random values in [min, max] from VectorE's XORWOW generators (NC-v4), cast to dst.

Each value is min + (max - min) * u with u = bits / 2**32 from the same generators as rng (isa/instructions/
rng.py). `min` and `max` are scalars or [P, 1] per-partition vectors (NKI docs nki.isa.rand2).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, streaming
from trnsim.isa.instructions.rng import require_engine_generation
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import require_buffer

_TWO_TO_MINUS_32 = np.float64(2.0**-32)


def semantics(bits: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Uniform values from raw uint32 draws: low + (high - low) * bits / 2**32, computed in fp32."""
    u = (bits.astype(np.float64) * _TWO_TO_MINUS_32).astype(np.float32)
    lo, hi = np.asarray(low, np.float32), np.asarray(high, np.float32)
    return lo + (hi - lo) * u


def check(call: Call) -> None:
    dst = call.dst
    assert dst is not None
    require_engine_generation(call, "rand2", gpsimd_from=4, vector_from=4)
    require_buffer(dst, "rand2 dst", call.location)
    low, high = call.param("low_value"), call.param("high_value")
    if low is not None and high is not None and not low < high:
        raise UsageError(f"rand2 needs min < max, got min={low} max={high}", call.location, rule="range")


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """No published cost: rng's rule, max(MIN_II, N) (one element written per cycle)."""
    return streaming(core, engine, a, lambda ii, n: max(ii, n))


RECORD = InstructionRecord(
    opcode=Opcode.RAND2,
    engines=(Engine.VECTOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    source="NKI docs nki.isa.rand2; cost: VectorE streaming rule (trainium.md §3.6-3.7)",
)
