"""`nki.isa` classes: NkiInstruction (the handle an instruction call returns) and NkiValidationError."""

from __future__ import annotations

from trnsim.errors import KernelError, UsageError
from trnsim.isa.instruction import Instruction
from trnsim.nki.context import user_location
from trnsim.nki.nki_object import NKIObject

# NKI raises NkiValidationError when a call breaks a hardware rule; trnsim's rule errors (DtypeError,
# ShapeMismatchError, TileShapeError, UsageError, ...) all derive from KernelError, so `except
# nisa.NkiValidationError` catches every one of them.
NkiValidationError = KernelError


class NkiInstruction(NKIObject):
    """The handle of one issued instruction (what trnsim recorded: opcode, engine, cycles, location)."""

    def __init__(self, handle: Instruction) -> None:
        self.handle = handle
        self.producers: list[NkiInstruction] = []

    def depends_on(self, *producers: NkiInstruction) -> NkiInstruction:
        """Make this instruction run after each producer completes; returns self.

        trnsim orders instructions by the memory they read and write, so the edge becomes a read of what the
        producer writes: this instruction then waits for the producer's result, as a semaphore wait would. A
        producer that writes no memory (set_rng_seed, register_load, a barrier) gives nothing to wait for;
        its edge is kept in `producers` and orders the two only on the same engine (program order).
        """
        for p in producers:
            if not isinstance(p, NkiInstruction):
                raise UsageError(
                    f"depends_on takes instructions returned by nki.isa calls, got {type(p).__name__}",
                    user_location(),
                    rule="depends-on",
                )
            if p is self:
                raise UsageError("an instruction cannot depend on itself", user_location(), rule="depends-on")
            self.handle.reads = (*self.handle.reads, *p.handle.writes)
        self.producers.extend(producers)
        return self

    def __repr__(self) -> str:
        h = self.handle
        return f"NkiInstruction({h.label or h.opcode.key} on {h.engine.key} at {h.location})"
