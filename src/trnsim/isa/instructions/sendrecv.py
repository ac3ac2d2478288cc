"""sendrecv: swap SBUF tiles between the two physical cores of one HBM stack (LNC=2 pairs).

Values: dst receives the partner core's src (the kernel language fetches it from the partner's program).
Cost here: the DMA that moves the tile, spread over the core's DMA queues, with the fixed DMA latency, in
cycles of the engine that triggers it. Waiting for the partner is the instance timing's
(sim/instance_timing.py): both cores' sendrecv of one pipe start together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trnsim.errors import DtypeError, ShapeMismatchError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa.cost_rules import CostArgs, dma_efficiency, engine_clock_ghz
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import SBUF, Call
from trnsim.isa.record import InstructionRecord

# gpsimd_dma moves at most this many bytes per partition, by element size (nki.isa.sendrecv docstring)
GPSIMD_DMA_MAX_BYTES = {4: 1024, 2: 512, 1: 256}


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """a.p partitions of a.n bytes each, over all the core's DMA queues, plus the fixed DMA latency."""
    dma = core.dma
    rate = dma.queues * dma.queue_bytes_per_ns * dma_efficiency(dma, a.n)
    return (dma.fixed_latency_ns + a.p * a.n / rate) * engine_clock_ghz(core, engine)


def cost_args(call: Call) -> CostArgs:
    src = call.inputs["src"]
    return CostArgs(n=src.free * src.dtype.itemsize, p=src.partitions)


def check(call: Call) -> None:
    src, dst = call.inputs["src"], call.dst
    assert dst is not None
    for t in (src, dst):
        if t.buffer != SBUF:
            raise UsageError(f"sendrecv {t.name} must be in SBUF, got {t} in {t.buffer}", call.location, rule="buffer")
    if src.dtype != dst.dtype:
        raise DtypeError(
            f"sendrecv src and dst dtypes differ ({src.dtype} vs {dst.dtype})", call.location, rule="dtype"
        )
    if src.shape != dst.shape:
        raise ShapeMismatchError(
            f"sendrecv src {list(src.shape)} and dst {list(dst.shape)} must have the same shape",
            call.location,
            rule="shape",
        )
    if call.params.get("dma_engine") == "gpsimd_dma":
        limit = GPSIMD_DMA_MAX_BYTES.get(src.dtype.itemsize, 256)
        if src.free * src.dtype.itemsize > limit:
            raise UsageError(
                f"sendrecv with dma_engine=gpsimd_dma moves at most {limit} bytes per partition of a "
                f"{src.dtype.itemsize}-byte dtype, got {src.free * src.dtype.itemsize}",
                call.location,
                rule="gpsimd-dma",
            )


def default_engine(params: Mapping[str, Any]) -> Engine | None:
    return Engine.GPSIMD if params.get("dma_engine") == "gpsimd_dma" else None


def semantics(data: np.ndarray) -> np.ndarray:
    return data


RECORD = InstructionRecord(
    opcode=Opcode.SENDRECV,
    engines=(Engine.SYNC, Engine.GPSIMD, Engine.SCALAR, Engine.VECTOR, Engine.TENSOR),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    default_engine=default_engine,
    source="nki.isa.sendrecv docstring; DMA model trainium.md §3.7",
)
