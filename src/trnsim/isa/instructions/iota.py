"""iota: generate integer index values from an access pattern (GpSimd)."""

from __future__ import annotations

from collections.abc import Callable

from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs, gpsimd_cycles
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import Call
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import require_buffer


def gpsimd_reachable(what: str) -> Callable[[Call], None]:
    """GpSimd cannot access PSUM: every tile of a GpSimd-only instruction `what` is in SBUF."""

    def check(call: Call) -> None:
        for t in call.all_operands():
            require_buffer(t, f"{what} {t.name}", call.location, allow_psum=False)

    return check


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """GPSIMD_START + N (§3.6)."""
    return gpsimd_cycles(core, a)


RECORD = InstructionRecord(
    opcode=Opcode.IOTA,
    engines=(Engine.GPSIMD,),
    cycles=cycles,
    semantics=sem.iota,
    check=gpsimd_reachable("iota"),
    source="trainium.md §3.6 iota",
)
