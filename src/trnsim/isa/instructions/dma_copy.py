"""dma_copy: move elements between HBM and SBUF on a DMA queue, casting through fp32 when dtypes differ."""

from __future__ import annotations

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import HBM, PSUM, SBUF, Call
from trnsim.isa.record import InstructionRecord, Transfer
from trnsim.isa.rules import check_partitions


def check(call: Call) -> None:
    dst, src = call.dst, call.inputs["src"]
    assert dst is not None
    for t, what in ((dst, "dma_copy dst"), (src, "dma_copy src")):
        if t.buffer == PSUM:
            raise UsageError(
                f"{what} is in PSUM; DMA moves HBM and SBUF only: copy PSUM to SBUF first", call.location, rule="buffer"
            )
        check_partitions(t, call.core, what, call.location)
    if dst.size != src.size:
        raise ShapeMismatchError(
            f"dma_copy moves {src.size} elements {list(src.shape)} into {dst.size} elements {list(dst.shape)}; "
            "element counts must match",
            call.location,
            rule="shape",
        )


def transfer(call: Call) -> Transfer:
    """Bytes (the wider of the two dtypes), descriptors (one per SBUF partition) and HBM traffic of a call."""
    dst, src = call.dst, call.inputs["src"]
    assert dst is not None
    n_elems = call.param("count", dst.size)
    nbytes = n_elems * max(src.dtype.itemsize, dst.dtype.itemsize)
    sbuf_side = dst if dst.buffer == SBUF else src
    rows = sbuf_side.partitions if sbuf_side.buffer == SBUF else (dst.shape[0] if dst.shape else 1)
    if call.param("masked", False):
        rows = call.partitions
    run = min(src.contiguous_run_bytes, dst.contiguous_run_bytes)
    hbm = sum(n_elems * t.dtype.itemsize for t in (src, dst) if t.buffer == HBM)
    return Transfer(nbytes, max(1, rows), run, hbm)


def no_engine_facts(call: Call) -> CostArgs:
    return CostArgs()


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    return 0.0  # a DMA queue's time is bytes over its granted rate, decided when it is scheduled


RECORD = InstructionRecord(
    opcode=Opcode.DMA_COPY,
    engines=(Engine.DMA,),
    cycles=cycles,
    semantics=sem.dma_copy,
    check=check,
    cost_args=no_engine_facts,
    transfer=transfer,
    source="trainium.md §3.6 dma_copy, §3.7 DMA",
)
