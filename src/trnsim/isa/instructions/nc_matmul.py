"""nc_matmul: dst[M, N] (PSUM, fp32) = stationary[K, M].T @ moving[K, N] on the PE array.

Transpose mode (`is_transpose=True`, NeuronCore-v3 on; NKI docs, nki.isa.nc_matmul and the Trainium2
architecture guide): the stationary tile is transposed through an identity moving tile bit-accurately
(NaN/Inf pass through, nothing is summed), dst has the input's dtype, and fp32 runs 2x faster than a plain
fp32 matmul. On NeuronCore-v2 the flag only tags the profile: the call is an ordinary fp32 matmul.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trnsim import dtypes
from trnsim.errors import DtypeError, ShapeMismatchError, TileShapeError, UsageError
from trnsim.hw.spec import CoreSpec
from trnsim.isa import semantics as sem
from trnsim.isa.cost_rules import CostArgs
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.isa.operand import PSUM, Call, Operand
from trnsim.isa.record import InstructionRecord
from trnsim.isa.rules import require_buffer


def check_matmul_limits(core: CoreSpec, k: int, n_stationary: int, n_moving: int, loc: str) -> None:
    """The PE array's limits: contraction <= pmax, stationary free <= 128, moving free <= 512 (one PSUM bank).

    Legacy calls check this before allocating their PSUM result, so the error names the matmul rule.
    """
    for size, limit, what, name in (
        (k, core.tensor.pe_rows, "stationary partition (contraction) dim", "pmax"),
        (n_stationary, core.tensor.pe_cols, "stationary free size", "gemm_stationary_fmax"),
        (n_moving, core.tensor.moving_fmax, "moving free size", "gemm_moving_fmax"),
    ):
        if size > limit:
            raise TileShapeError(f"nc_matmul {what} {size} exceeds {limit} (nl.tile_size.{name})", loc, rule=name)


def _free_sizes(st: Operand, mv: Operand, double_row: bool) -> tuple[int, int]:
    """Stationary and moving free sizes: double-row inputs are [K, 2, M] and [K, 2, N]."""
    if double_row:
        return st.shape[2], mv.shape[2]
    return st.free, mv.free


def transpose_mode(core: CoreSpec, params: Mapping[str, Any]) -> bool:
    """Whether a call runs in the PE array's transpose mode: asked for, on a core that has it (NC-v3 on)."""
    return bool(params.get("is_transpose", False)) and core.tensor.transpose_mode_fp32_speedup > 0


def _check_transpose(call: Call, dst: Operand, st: Operand) -> None:
    """Transpose mode's own rules (nki.isa.nc_matmul / nc_transpose docs): dst in the input's dtype."""
    if call.param("double_row", False):
        raise UsageError(
            "nc_matmul transpose mode (is_transpose=True) cannot be combined with perf_mode double_row",
            call.location,
            rule="transpose-mode",
        )
    if dst.dtype != st.dtype:
        raise DtypeError(
            f"nc_matmul with is_transpose=True writes the stationary dtype {dtypes.name(st.dtype)} into PSUM, but "
            f"dst is {dtypes.name(dst.dtype)}; allocate the PSUM tile in {dtypes.name(st.dtype)}",
            call.location,
            rule="transpose-dtype",
        )


def check(call: Call) -> None:
    core, loc = call.core, call.location
    dst, st, mv = call.dst, call.inputs["stationary"], call.inputs["moving"]
    assert dst is not None
    double_row = bool(call.param("double_row", False))
    require_buffer(st, "nc_matmul stationary", loc, allow_psum=False)
    require_buffer(mv, "nc_matmul moving", loc, allow_psum=False)
    if dst.buffer != PSUM:
        raise UsageError(f"nc_matmul writes to PSUM, but dst {dst} is in {dst.buffer.upper()}", loc, rule="buffer")
    allowed_out = [dtypes.resolve(d) for d in core.tensor.psum_output_dtypes]
    if transpose_mode(core, call.params):
        _check_transpose(call, dst, st)
    elif dst.dtype not in allowed_out:
        names = ", ".join(dtypes.name(d) for d in allowed_out)
        raise DtypeError(
            f"nc_matmul writes {names} into PSUM on NeuronCore-v{core.nc_version}, but dst is "
            f"{dtypes.name(dst.dtype)}; allocate the PSUM tile as nl.float32 and cast when copying it out",
            loc,
            rule="matmul-dtype",
        )
    if (st.dtype == dtypes.float32) != (mv.dtype == dtypes.float32):
        raise DtypeError(
            f"nc_matmul mixes {dtypes.name(st.dtype)} stationary with {dtypes.name(mv.dtype)} moving; if one input "
            "is fp32/tf32 the other must be too",
            loc,
            rule="matmul-dtype",
        )
    for t, what in ((st, "stationary"), (mv, "moving")):
        if not dtypes.is_float(t.dtype):
            raise DtypeError(
                f"nc_matmul {what} must be a float type, got {dtypes.name(t.dtype)}", loc, rule="matmul-dtype"
            )
    if double_row:
        if not core.tensor.fp8_double_row:
            raise UsageError("matmul_perf_mode.double_row needs NeuronCore-v3 or newer", loc, rule="double-row")
        if st.dtype not in dtypes.FP8_DTYPES or mv.dtype not in dtypes.FP8_DTYPES:
            raise DtypeError("double_row matmul takes fp8 inputs only", loc, rule="double-row")
        if len(st.shape) != 3 or len(mv.shape) != 3 or st.shape[1] != 2 or mv.shape[1] != 2:
            raise TileShapeError(
                "double_row matmul takes stationary [K, 2, M] and moving [K, 2, N]", loc, rule="double-row"
            )
    n_st, n_mv = _free_sizes(st, mv, double_row)
    check_matmul_limits(core, st.partitions, n_st, n_mv, loc)
    if st.partitions != mv.partitions:
        raise ShapeMismatchError(
            f"nc_matmul contraction dims differ: stationary has {st.partitions} partitions, moving has {mv.partitions}",
            loc,
            rule="contraction",
        )
    if dst.partitions != n_st or dst.free != n_mv:
        raise ShapeMismatchError(
            f"nc_matmul dst must be [{n_st}, {n_mv}] (stationary free x moving free), got {list(dst.shape)}",
            loc,
            rule="shape",
        )


def flops(call: Call) -> int:
    """2 K M N: a double-row step contracts over twice the partitions."""
    st, mv = call.inputs["stationary"], call.inputs["moving"]
    double_row = bool(call.param("double_row", False))
    n_st, n_mv = _free_sizes(st, mv, double_row)
    return 2 * st.partitions * (2 if double_row else 1) * n_st * n_mv


def cost_args(call: Call) -> CostArgs:
    st, mv = call.inputs["stationary"], call.inputs["moving"]
    n_st, n_mv = _free_sizes(st, mv, bool(call.param("double_row", False)))
    return CostArgs(
        n_stationary=n_st,
        n_moving=n_mv,
        fp32_matmul=st.dtype == dtypes.float32,
        p=st.partitions,
        transpose=transpose_mode(call.core, call.params),
    )


def cycles(core: CoreSpec, engine: Engine, a: CostArgs) -> float:
    """max(min(MIN_II, N_stationary), N_moving), x4 for fp32 inputs (§3.6); transpose mode's fp32 x4 / 2."""
    t = core.tensor
    mm = max(min(t.min_ii_cycles, a.n_stationary), a.n_moving)
    if not a.fp32_matmul:
        return float(mm)
    speedup = t.transpose_mode_fp32_speedup if a.transpose and t.transpose_mode_fp32_speedup > 0 else 1.0
    return float(mm * t.fp32_cost_factor / speedup)


def semantics(
    stationary: np.ndarray,
    moving: np.ndarray,
    double_row: bool = False,
    is_transpose: bool = False,
    location: str = "",
) -> np.ndarray:
    """The matmul, or in transpose mode the pass-through of stationary's elements that moving selects."""
    if not is_transpose:
        return sem.nc_matmul(stationary, moving, double_row)
    return transpose_through(stationary, moving, location)


def transpose_through(stationary: np.ndarray, moving: np.ndarray, location: str) -> np.ndarray:
    """dst[m, n] = stationary[k, m] for the k where moving[k, n] == 1 (0 where column n has none).

    Bit-accurate: values are moved, not multiplied and summed, so NaN/Inf stay where they were. The docs
    define the mode with an identity moving tile; a moving column that is not one-hot (or all zero) is a
    matmul the mode does not document, and is refused rather than guessed.
    """
    st = stationary.reshape(stationary.shape[0], -1)
    mv = moving.reshape(moving.shape[0], -1)
    ones = mv == 1
    if not (ones | (mv == 0)).all() or (ones.sum(axis=0) > 1).any():
        raise UsageError(
            "nc_matmul with is_transpose=True takes an identity (or one-hot column) moving tile; the moving "
            "tile has other values, which transpose mode does not define",
            location,
            rule="transpose-moving",
        )
    out = st[ones.argmax(axis=0), :].T.copy()
    out[:, ~ones.any(axis=0)] = 0
    return out


RECORD = InstructionRecord(
    opcode=Opcode.NC_MATMUL,
    engines=(Engine.TENSOR,),
    cycles=cycles,
    semantics=semantics,
    check=check,
    cost_args=cost_args,
    flops=flops,
    source="trainium.md §3.6 nc_matmul, §3.7 TensorE; NKI docs nki.isa.nc_matmul (transpose mode)",
)
