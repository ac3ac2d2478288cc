"""dma_compute: dst = reduce_op(srcs[0] * scales[0], srcs[1] * scales[1], ...) computed by a DMA engine.

NKI docs (nki.isa.dma_compute): only add, only scales of 1.0 (or None); up to 16 sources, each with dst's
element count; HBM or SBUF operands; the DMA casts every source to fp32, computes, and casts to dst's
dtype. Sources and dst may be access-pattern views, including `.ap(vector_offset=...)` ones: that is the
docs' gather (dst in SBUF += HBM rows) and scatter (HBM rows += SBUF) read-modify-write. The transfer
streams every source through the queue and writes dst once, so it moves the bytes of one copy per source
(assumption: the docs give no cost; this is dma_copy's rule per source read).
"""

from __future__ import annotations

import numpy as np

from trnsim.errors import ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import HBM, PSUM, SBUF, Call, Operand
from trnsim.isa.record import InstructionRecord, Transfer
from trnsim.isa.rules import check_partitions

MAX_SOURCES = 16  # NKI docs: "The max number of source tensors in srcs is 16"


def semantics(srcs: list[np.ndarray], scales: list[float]) -> np.ndarray:
    acc = np.zeros(np.asarray(srcs[0]).shape, np.float32)
    for s, k in zip(srcs, scales, strict=True):
        acc += np.asarray(s, np.float32).reshape(acc.shape) * np.float32(k)
    return acc


def sources(call: Call) -> list[Operand]:
    return [t for name, t in call.inputs.items() if name.startswith("srcs")]


def check(call: Call) -> None:
    dst = call.dst
    assert dst is not None
    loc = call.location
    srcs = sources(call)
    if not 1 <= len(srcs) <= MAX_SOURCES:
        raise UsageError(f"dma_compute takes 1..{MAX_SOURCES} srcs, got {len(srcs)}", loc, rule="srcs")
    if call.param("reduce_op") != "add":
        raise UsageError(f"dma_compute supports reduce_op=nl.add only, got {call.param('reduce_op')}", loc)
    scales = call.param("scales")
    if any(float(s) != 1.0 for s in scales):
        raise UsageError(f"dma_compute scales must all be 1.0 (or None), got {list(scales)}", loc, rule="scales")
    if not call.param("unique_indices"):
        raise UsageError("dma_compute supports unique_indices=True only (NKI 0.6)", loc, rule="indices")
    for t in (dst, *srcs):
        if t.buffer == PSUM:
            raise UsageError(f"dma_compute {t.name} {t} is in PSUM; DMA reads HBM and SBUF only", loc, rule="buffer")
        check_partitions(t, call.core, f"dma_compute {t.name}", loc)
        if t.size != dst.size:
            raise ShapeMismatchError(
                f"dma_compute {t.name} {t} has {t.size} elements, dst {dst} has {dst.size}; counts must match",
                loc,
                rule="shape",
            )


def transfer(call: Call) -> Transfer:
    """One copy's bytes per source (dma_copy's rule: the wider dtype), descriptors of the SBUF side."""
    dst = call.dst
    assert dst is not None
    srcs = sources(call)
    n = dst.size
    nbytes = sum(n * max(s.dtype.itemsize, dst.dtype.itemsize) for s in srcs)
    sbuf_side = next((t for t in (dst, *srcs) if t.buffer == SBUF), dst)
    rows = sbuf_side.partitions if sbuf_side.buffer == SBUF else (dst.shape[0] if dst.shape else 1)
    run = min(t.contiguous_run_bytes for t in (dst, *srcs))
    hbm = sum(n * t.dtype.itemsize for t in (dst, *srcs) if t.buffer == HBM)
    return Transfer(nbytes, max(1, rows), run, hbm)


def no_engine_facts(call: Call) -> CostArgs:
    return CostArgs()


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    return 0.0  # a DMA queue's time is bytes over its granted rate, decided when it is scheduled


RECORD = InstructionRecord(
    opcode=Opcode.DMA_COMPUTE,
    engines=(Engine.DMA,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=no_engine_facts,
    transfer=transfer,
    source="NKI docs nki.isa.dma_compute; cost: trainium.md §3.7 DMA (dma_copy's rule per source)",
)
