"""How long each instruction keeps its engine busy: the one place a cycle count is decided.

Formulas are the documented per-instruction estimates (trainium.md §3.6 "Estimated instruction cost"
and §3.7 performance model); every constant comes from the core's preset. N is elements per partition.
"""

from __future__ import annotations

from dataclasses import dataclass

from trnsim.hw.spec import CoreSpec, DmaSpec
from trnsim.isa.alu import FAST_BF16_TT_OPS
from trnsim.isa.opcodes import Engine, Opcode


@dataclass(frozen=True, slots=True)
class CostArgs:
    """Shape and dtype facts an instruction's cost depends on (no values)."""

    n: int = 1  # elements per partition of the (largest) operand
    p: int = 1  # partitions
    n_stationary: int = 0  # nc_matmul: stationary free size
    n_moving: int = 0  # nc_matmul: moving free size
    fp32_matmul: bool = False  # nc_matmul with fp32/tf32 inputs
    n_inputs: int = 1  # tensor inputs read by the engine
    all_bf16: bool = False  # every operand bf16/fp16
    sbuf_only: bool = True  # every operand in SBUF (none in PSUM)
    psum_input: bool = False  # some input is in PSUM
    strided: bool = False  # some operand's innermost stride is at or above the full-rate limit
    alu_op: str = ""  # the ALU op(s), where the cost depends on them ("op0,op1" for two-op instructions)
    zero_fill: bool = False  # memset of zero
    reduce: bool = False  # activation with a free-axis reduction


def _vector_speedup(core: CoreSpec, a: CostArgs, copy_like: bool) -> float:
    """Trn2+ VectorE perf modes: 4x bf16 copy/tensor_scalar SBUF->SBUF unit stride, 2x other bf16."""
    if not a.all_bf16:
        return 1.0
    if copy_like and a.sbuf_only and not a.strided:
        return core.vector.bf16_copy_speedup
    return core.vector.bf16_speedup


def compute_cycles(op: Opcode, engine: Engine, core: CoreSpec, a: CostArgs) -> float:
    """Engine cycles the instruction occupies its engine (its initiation interval)."""
    if op is Opcode.NC_MATMUL:
        t = core.tensor
        mm = max(min(t.min_ii_cycles, a.n_stationary), a.n_moving)
        return float(mm * (t.fp32_cost_factor if a.fp32_matmul else 1))
    if op is Opcode.NC_TRANSPOSE and engine is Engine.TENSOR:
        return float(max(a.p, min(core.tensor.min_ii_cycles, a.n)))
    if op is Opcode.BARRIER:
        return float(core.sync.min_ii_cycles)

    n = float(a.n)
    if engine is Engine.GPSIMD:
        # GpSimd: fixed start-up plus one element per cycle per input (GPSIMD_START ~ 150).
        gp = core.gpsimd.start_cycles + n * max(1, a.n_inputs)
        return gp * (core.sbuf.strided_slowdown if a.strided else 1.0)

    min_ii = float(core.vector.min_ii_cycles if engine is Engine.VECTOR else core.scalar.min_ii_cycles)
    if op is Opcode.ACTIVATION:
        cycles = max(min_ii, n) + (min_ii if a.reduce else 0)
    elif op is Opcode.TENSOR_TENSOR or op is Opcode.SELECT:
        fast = a.psum_input or (a.all_bf16 and a.sbuf_only and not a.strided and a.alu_op in FAST_BF16_TT_OPS)
        base = n if fast else 2 * n
        cycles = max(min_ii, base / _vector_speedup(core, a, copy_like=False))
    elif op in (Opcode.TENSOR_SCALAR, Opcode.TENSOR_COPY):
        if engine is Engine.SCALAR:
            speedup = core.scalar.bf16_speedup if a.all_bf16 else 1.0
        else:
            speedup = _vector_speedup(core, a, copy_like=True)
        cycles = max(min_ii, n / speedup)
    elif op is Opcode.TENSOR_REDUCE:
        fast = a.all_bf16 and a.alu_op in ("add", "maximum")
        cycles = max(min_ii, n / 2 if fast else n)
    elif op is Opcode.MEMSET:
        cycles = max(min_ii, n / 2 if (a.zero_fill and a.all_bf16) else n)
    elif op is Opcode.BN_AGGR:
        cycles = max(min_ii, 13 * (n / 3))
    elif op is Opcode.TENSOR_TENSOR_SCAN:
        cycles = max(min_ii, 2 * n)
    elif op is Opcode.SCALAR_TENSOR_TENSOR:
        # The documented estimate has no MIN_II floor: N for bf16 subtract-then-multiply on an even N, else 2N.
        fast = a.all_bf16 and a.alu_op == "subtract,multiply" and a.n % 2 == 0
        cycles = n if fast else 2 * n
    elif op is Opcode.RECIPROCAL:
        cycles = max(min_ii, 8 * n)
    else:  # NC_TRANSPOSE on VectorE, BN_STATS, and other one-input Vector/Scalar work
        cycles = max(min_ii, n)
    return cycles * (core.sbuf.strided_slowdown if a.strided else 1.0)


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
