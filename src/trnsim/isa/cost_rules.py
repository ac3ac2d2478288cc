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
from trnsim.hw.spec import CoreSpec
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
    n_inputs: int = 1  # tensor inputs read by the engine
    all_bf16: bool = False  # every operand bf16/fp16
    sbuf_only: bool = True  # every operand in SBUF (none in PSUM)
    psum_input: bool = False  # some input is in PSUM
    strided: bool = False  # some operand's innermost stride is at or above the full-rate limit
    alu_op: str = ""  # the ALU op(s), where the cost depends on them ("op0,op1" for two-op instructions)
    zero_fill: bool = False  # memset of zero
    reduce: bool = False  # activation with a free-axis reduction


CycleRule = Callable[[CoreSpec, Engine, CostArgs], float]


def operand_facts(core: CoreSpec, operands: list[Operand]) -> dict[str, Any]:
    """Facts shared by Vector/Scalar/GpSimd costs: dtypes, buffers and strides of the operands."""
    limit = core.sbuf.full_rate_max_stride_bytes
    return {
        "all_bf16": all(t.dtype in dtypes.LOW_PRECISION_FLOATS for t in operands),
        "sbuf_only": all(t.buffer == SBUF for t in operands),
        "strided": any(t.innermost_stride_bytes >= limit for t in operands),
    }


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
