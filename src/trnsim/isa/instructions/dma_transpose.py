"""dma_transpose: the DMA engines' own transpose (NeuronCore-v3+), HBM -> SBUF or SBUF -> SBUF.

trainium2_arch.rst, "DMA Transpose": the most minor dim of the source becomes the destination's partition
dim; 2- and 4-byte dtypes, bit-accurate; all 16 DMA engines work co-operatively on one transpose; it reaches
up to 90% (HBM -> SBUF) or 50% (SBUF -> SBUF) of DMA throughput. An alternative to a TensorE transpose that
reads and writes SBUF directly, so no engine has to copy a PSUM result out ("particularly useful in operators
that are ScalarE/VectorE bound, such as self attention").

The kernel surface passes the source already permuted (a view of src in the destination's shape), so the
semantics is a copy; the record checks the buffers, dtypes and generation, and prices the bytes.
"""

from __future__ import annotations

import math

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec, DmaSpec
from trnsim.isa import semantics as sem
from trnsim.isa.instructions.dma_copy import cycles, no_engine_facts  # a DMA: no engine time of its own
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import HBM, SBUF, Call
from trnsim.isa.record import InstructionRecord, Transfer
from trnsim.isa.rules import check_partitions

ITEMSIZES = (2, 4)  # trainium2_arch.rst: "bit-accurate transposition for both 2-byte and 4-byte data types"


def throughput_fraction(dma: DmaSpec, src_buffer: str) -> float:
    """Share of the DMA throughput a transpose from `src_buffer` reaches (0: the core has no DMA transpose)."""
    return dma.transpose_hbm_fraction if src_buffer == HBM else dma.transpose_sbuf_fraction


def supported(core: CoreSpec) -> bool:
    return core.dma.transpose_sbuf_fraction > 0 and core.dma.transpose_hbm_fraction > 0


def equivalent_run_bytes(dma: DmaSpec, fraction: float) -> int:
    """The contiguous-run length the DMA model prices at `fraction` of a queue's rate.

    The scheduler charges a transfer rate x b / (b + descriptor_overhead_bytes) for runs of b bytes
    (cost_rules.dma_efficiency); a DMA transpose's rate is the documented fraction of the DMA throughput
    whatever its runs, so it is described to the scheduler by the run length with that efficiency."""
    return max(1, math.ceil(dma.descriptor_overhead_bytes * fraction / (1.0 - fraction)))


def check(call: Call) -> None:
    dst, src = call.dst, call.inputs["src"]
    assert dst is not None
    if not supported(call.core):
        raise UsageError(
            f"dma_transpose needs NeuronCore-v3 or newer (Trn2, Trn3); this core is NeuronCore-v{call.core.nc_version}",
            call.location,
            rule="generation",
        )
    if dst.buffer != SBUF or src.buffer not in (HBM, SBUF):
        raise UsageError(
            f"dma_transpose moves HBM -> SBUF or SBUF -> SBUF; got {src.buffer} -> {dst.buffer}",
            call.location,
            rule="buffer",
        )
    if src.dtype != dst.dtype or src.dtype.itemsize not in ITEMSIZES:
        raise UsageError(
            f"dma_transpose needs one 2- or 4-byte dtype for src and dst, got {src.dtype} -> {dst.dtype}",
            call.location,
            rule="dtype",
        )
    check_partitions(dst, call.core, "dma_transpose dst", call.location)
    if dst.size != src.size:
        raise ShapeMismatchError(
            f"dma_transpose moves {src.size} elements into {dst.size}; element counts must match",
            call.location,
            rule="shape",
        )


def transfer(call: Call) -> Transfer:
    """All queues take part (trainium2_arch.rst); the bytes move at the documented fraction of their rate."""
    dst, src = call.dst, call.inputs["src"]
    assert dst is not None
    nbytes = dst.size * dst.dtype.itemsize
    run = equivalent_run_bytes(call.core.dma, throughput_fraction(call.core.dma, src.buffer))
    return Transfer(nbytes, call.core.sbuf.partitions, run, nbytes if src.buffer == HBM else 0)


RECORD = InstructionRecord(
    opcode=Opcode.DMA_TRANSPOSE,
    engines=(Engine.DMA,),
    cycles=cycles,
    semantics=sem.dma_copy,
    check=check,
    cost_args=no_engine_facts,
    transfer=transfer,
    source="trainium2_arch.rst DMA Transpose; trainium.md §3.6 dma_transpose",
)
