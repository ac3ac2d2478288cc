"""Building blocks of the instruction costs: the facts a cost depends on and the rules engines share.

Formulas are the documented per-instruction estimates (trainium.md §3.6 "Estimated instruction cost"
and §3.7 performance model); every constant comes from the core's preset. N is elements per partition.
Each instruction's own formula is in its record (isa/instructions/); isa/cost.py answers queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trnsim import dtypes
from trnsim.hw.spec import CoreSpec, DmaSpec
from trnsim.isa.opcodes import Engine
from trnsim.isa.operand import PSUM, SBUF, Call, Operand


@dataclass(frozen=True, slots=True)
class CostArgs:
    """Shape and dtype facts an instruction's cost depends on (no values)."""

    n: int = 1  # elements per partition of the (largest) operand
    p: int = 1  # partitions
    n_stationary: int = 0  # nc_matmul: stationary free size
    n_moving: int = 0  # nc_matmul: moving free size
    fp32_matmul: bool = False  # nc_matmul with fp32/tf32 inputs
    transpose: bool = False  # nc_matmul in the PE array's transpose mode (is_transpose=True, NC-v3 on)
    n_inputs: int = 1  # tensor inputs read by the engine
    all_bf16: bool = False  # every operand bf16/fp16
    sbuf_only: bool = True  # every operand in SBUF (none in PSUM)
    psum_input: bool = False  # some input is in PSUM
    strided: bool = False  # some operand's innermost stride is at or above the full-rate limit
    alu_op: str = ""  # the ALU op(s), where the cost depends on them ("op0,op1" for two-op instructions)
    zero_fill: bool = False  # memset of zero
    reduce: bool = False  # activation with a free-axis reduction
    elems_per_index: int = 1  # local_gather: contiguous elements read per index
    dtype_bytes: int = 4  # local_gather: bytes per element of the gathered tile
    top_k: int = 0  # topk: values selected per partition


CycleRule = Callable[[CoreSpec, Engine, CostArgs], float]


def operand_facts(core: CoreSpec, operands: list[Operand]) -> dict[str, Any]:
    """Facts shared by Vector/Scalar/GpSimd costs: dtypes, buffers and strides of the operands."""
    limit = core.sbuf.full_rate_max_stride_bytes
    all_bf16, sbuf_only, strided = True, True, False
    for t in operands:  # one pass: this runs for every instruction a kernel issues
        all_bf16 = all_bf16 and t.dtype in dtypes.LOW_PRECISION_FLOATS
        sbuf_only = sbuf_only and t.buffer == SBUF
        strided = strided or t.innermost_stride_bytes >= limit
    return {"all_bf16": all_bf16, "sbuf_only": sbuf_only, "strided": strided}


def streaming_args(call: Call, *names: str, **extra: Any) -> CostArgs:
    """CostArgs of an engine instruction over the processed extent, with the facts of the named operands."""
    return CostArgs(
        n=call.elements,
        p=call.partitions,
        **operand_facts(call.core, call.operands(*names)),
        **extra,
    )


def any_in_psum(call: Call, *names: str) -> bool:
    return any(t.buffer == PSUM for t in call.operands(*names))


def min_ii(core: CoreSpec, engine: Engine) -> float:
    """The engine's minimum initiation interval (MIN_II ~ 64 cycles)."""
    return float(core.vector.min_ii_cycles if engine is Engine.VECTOR else core.scalar.min_ii_cycles)


def stride_factor(core: CoreSpec, a: CostArgs) -> float:
    """Innermost strides at or above the full-rate limit halve the SBUF access rate (§3.7)."""
    return core.sbuf.strided_slowdown if a.strided else 1.0


def gpsimd_cycles(core: CoreSpec, a: CostArgs) -> float:
    """GpSimd: fixed start-up plus one element per cycle per input (GPSIMD_START ~ 150)."""
    gp = core.gpsimd.start_cycles + float(a.n) * max(1, a.n_inputs)
    return gp * stride_factor(core, a)


def streaming(core: CoreSpec, engine: Engine, a: CostArgs, formula: Callable[[float, float], float]) -> float:
    """Cycles of a Vector/Scalar/GpSimd instruction: GpSimd's start-up rule, else `formula(MIN_II, N)`
    of the record, both with the stride penalty."""
    if engine is Engine.GPSIMD:
        return gpsimd_cycles(core, a)
    return formula(min_ii(core, engine), float(a.n)) * stride_factor(core, a)


def vector_speedup(core: CoreSpec, a: CostArgs, copy_like: bool) -> float:
    """Trn2+ VectorE perf modes: 4x bf16 copy/tensor_scalar SBUF->SBUF unit stride, 2x other bf16."""
    if not a.all_bf16:
        return 1.0
    if copy_like and a.sbuf_only and not a.strided:
        return core.vector.bf16_copy_speedup
    return core.vector.bf16_speedup


def copy_like_speedup(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """tensor_copy / tensor_scalar: ScalarE's bf16 perf mode (Trn3) or VectorE's copy perf mode."""
    if engine is Engine.SCALAR:
        return core.scalar.bf16_speedup if a.all_bf16 else 1.0
    return vector_speedup(core, a, copy_like=True)


def dma_efficiency(dma: DmaSpec, row_bytes: int) -> float:
    """Fraction of queue bandwidth a transfer of `row_bytes`-long contiguous runs achieves.

    Models the DMA guide's rule (>= 2 KiB per partition approaches peak, < 256 B is overhead-bound)
    as b / (b + descriptor_overhead_bytes).
    """
    b = float(max(1, row_bytes))
    return b / (b + dma.descriptor_overhead_bytes)


def dma_transfer_ns(dma: DmaSpec, nbytes: float, row_bytes: int, rate_bytes_per_ns: float) -> float:
    """Time one DMA queue spends moving `nbytes` at a granted rate (capped by the queue's own rate)."""
    rate = min(rate_bytes_per_ns, dma.queue_bytes_per_ns) * dma_efficiency(dma, row_bytes)
    return nbytes / rate


def dma_queue_pieces(core: CoreSpec, rows: int) -> int:
    """How many queues a transfer of `rows` partitions is split over: each queue (DMA engine) takes
    partitions / queues (8) adjacent partitions (DMA overview: a [4, 4096] load runs on one engine, a
    [128, 128] load on all 16 with 8 rows each; the bandwidth guide: fewer partitions, fewer engines)."""
    per_queue = max(1, core.sbuf.partitions // core.dma.queues)
    return max(1, min(core.dma.queues, -(-rows // per_queue)))


def dma_queue_occupancy_ns(dma: DmaSpec, data_ns: float) -> float:
    """How long one transfer (a queue's piece of a DMA) holds its queue: its data time, but at least the
    per-transfer descriptor/semaphore processing (DMA bandwidth guide: small transfers are bound by the
    transfer rate). The two overlap (max, not sum): the throughput-vs-payload curve of the DMA overview is
    proportional to the payload below its knee and flat above it."""
    return max(data_ns, dma.transfer_overhead_ns)


def engine_clock_ghz(core: CoreSpec, engine: Engine) -> float:
    return {
        Engine.TENSOR: core.tensor.clock_ghz,
        Engine.VECTOR: core.vector.clock_ghz,
        Engine.SCALAR: core.scalar.clock_ghz,
        Engine.GPSIMD: core.gpsimd.clock_ghz,
        Engine.SYNC: core.sync.clock_ghz,
    }[engine]


def pipeline_latency_ns(core: CoreSpec, engine: Engine) -> float:
    """Delay after an instruction's issue slot before its result may be used by a dependent."""
    if engine is Engine.DMA:
        return core.dma.fixed_latency_ns
    spec = {
        Engine.TENSOR: core.tensor,
        Engine.VECTOR: core.vector,
        Engine.SCALAR: core.scalar,
        Engine.GPSIMD: core.gpsimd,
        Engine.SYNC: core.sync,
    }[engine]
    return spec.pipeline_latency_cycles / spec.clock_ghz
