"""nisa.NkiInstruction (what the NKI 0.6 instruction calls return) and its depends_on edges in the timeline,
and nisa.NkiValidationError as the base of trnsim's rule errors."""

from __future__ import annotations

import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError
from trnsim.isa import Opcode


@nki.jit
def two_independent(with_edge):
    a = nl.ndarray((128, 2048), dtype=nl.float32, buffer=nl.sbuf)
    b = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.memset(a, 1.0)
    nisa.memset(b, 2.0)
    slow = nisa.dropout(a, a, 0.5)  # VectorE, 2048 elements per partition
    red = nl.ndarray((1, 64), dtype=nl.float32, buffer=nl.sbuf)
    fast = nisa.tensor_partition_reduce(red, nl.add, b)  # GpSimd, reads only b
    if with_edge:
        assert fast.depends_on(slow) is fast
    out = nl.ndarray((1, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, red)
    return out


def test_depends_on_makes_the_consumer_wait_for_the_producer() -> None:
    times = {}
    for edge in (False, True):
        prof = nki.profile(two_independent, target="trn2", mode="timing")(edge)
        ops = [i.opcode for i in prof.instructions]
        d, r = ops.index(Opcode.DROPOUT), ops.index(Opcode.TENSOR_PARTITION_REDUCE)
        tl = prof.timeline
        times[edge] = (tl.instr_end[d], tl.instr_start[r])
    assert times[False][1] < times[False][0]  # without the edge GpSimd overlaps the dropout
    assert times[True][1] >= times[True][0]  # with it, it starts after the dropout's result is ready


def test_instruction_handles_and_validation_errors() -> None:
    @nki.jit
    def k():
        t = nl.ndarray((128, 8), dtype=nl.uint32, buffer=nl.sbuf)
        ins = nisa.rng(t)
        assert isinstance(ins, nisa.NkiInstruction) and "rng" in repr(ins)
        ins.depends_on(ins)
        out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
        return out

    with pytest.raises(nisa.NkiValidationError, match="cannot depend on itself"):
        nki.simulate(k)()
    assert issubclass(DtypeError, nisa.NkiValidationError)
