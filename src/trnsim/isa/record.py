"""What an instruction is: one record per opcode, with its engines, legality rules, cost and semantics.

Records live one per file in isa/instructions/ and are collected by isa/registry.py. The kernel
language issues every instruction through one generic path (nki/issue.py) that asks the record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trnsim.errors import UsageError
from trnsim.isa.cost_rules import CostArgs, CycleRule, streaming_args
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import PSUM, Call, Operand


def no_rules(call: Call) -> None:
    """For instructions whose only rules are the generic ones (engine, operands on chip)."""


def streaming_cost_args(call: Call) -> CostArgs:
    """The default cost facts: the processed extent and the facts of every operand."""
    return streaming_args(call, "dst", *call.inputs)


@dataclass(frozen=True, slots=True)
class Transfer:
    """What a DMA moves; its time is the scheduler's (isa/cost.py dma_transfer_ns over the granted rate)."""

    nbytes: int
    rows: int  # contiguous runs ("descriptors")
    row_bytes: int  # bytes per contiguous run
    hbm_bytes: int


@dataclass(frozen=True, slots=True)
class InstructionRecord:
    opcode: Opcode
    engines: tuple[Engine, ...]  # engines it may run on; the first is the default when a kernel does not choose
    cycles: CycleRule  # engine cycles it occupies its engine, from CostArgs (planners call this too)
    semantics: Callable[..., Any]  # its numpy definition: fp32 operand values in, fp32 result out
    check: Callable[[Call], None] = no_rules  # its legality rules against the core spec; raises trnsim errors
    cost_args: Callable[[Call], CostArgs] = streaming_cost_args  # the cost facts of one call
    # the engine a call runs on when the kernel names none, where it depends on the call (else engines[0])
    default_engine: Callable[[Mapping[str, Any]], Engine | None] | None = None
    transfer: Callable[[Call], Transfer] | None = None  # DMA instructions: what the transfer moves
    flops: Callable[[Call], int] | None = None  # TensorE instructions: floating-point operations
    source: str = "trainium.md §3.6"  # where its semantics and cost are documented

    @property
    def name(self) -> str:
        return self.opcode.key

    def choose_engine(
        self, requested: Engine | None, operands: list[Operand], params: Mapping[str, Any], location: str
    ) -> Engine:
        """The engine a call runs on: the kernel's choice if allowed, else the record's default."""
        if requested is None and self.default_engine is not None:
            requested = self.default_engine(params)
        if requested is None:
            return self.engines[0]
        if requested not in self.engines:
            names = ", ".join(e.key for e in self.engines)
            raise UsageError(
                f"{self.name} cannot run on the {requested.key} engine; allowed: {names}", location, rule="engine"
            )
        if requested is Engine.GPSIMD and any(t.buffer == PSUM for t in operands):
            raise UsageError("the GpSimd engine cannot access PSUM", location, rule="gpsimd-psum")
        return requested

    def cost(self, call: Call) -> float:
        """Engine cycles this call occupies its engine."""
        return self.cycles(call.core, call.engine, self.cost_args(call))
