"""core_barrier: the cores of one HBM stack signal each other's semaphores and wait (LNC=2 pairs).

It moves no data. Its own cost is one instruction issue on its engine (MIN_II); the wait for the other
core is the instance timing's (sim/instance_timing.py): both cores' barriers end together.
"""

from __future__ import annotations

from trnsim.errors import UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import HBM, SBUF, Call
from trnsim.isa.record import InstructionRecord


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    spec = {
        Engine.TENSOR: core.tensor,
        Engine.VECTOR: core.vector,
        Engine.SCALAR: core.scalar,
        Engine.GPSIMD: core.gpsimd,
        Engine.SYNC: core.sync,
    }[engine]
    return float(spec.min_ii_cycles)


def check(call: Call) -> None:
    """The docs ask for the shared HBM tensor the cores synchronise on; AWS's own kernels also pass an SBUF
    tile (nki-library moe_cte's bwmm_shard_on_I: `core_barrier(block_idx, (0, 1))`), which the barrier only
    orders against (it moves no data), so SBUF is taken too (the builder warns); PSUM is not."""
    assert call.dst is not None  # the builder always passes `data`
    if call.dst.buffer not in (HBM, SBUF):
        raise UsageError(
            f"core_barrier data must be shared HBM the cores synchronise on, got {call.dst} in {call.dst.buffer}",
            call.location,
            rule="buffer",
        )


def no_values() -> None:
    return None


RECORD = InstructionRecord(
    opcode=Opcode.CORE_BARRIER,
    engines=(Engine.GPSIMD, Engine.SYNC, Engine.SCALAR, Engine.VECTOR, Engine.TENSOR),
    cycles=cycles,
    semantics=no_values,
    check=check,
    source="nki.isa.core_barrier docstring (semaphore signal and wait)",
)
