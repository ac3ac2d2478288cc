"""EngineLoad and instruction_ns charge what the isa records cost, with the operands' dtypes and buffers:
checked against the documented formulas written out here from the preset's numbers (trainium.md §3.6)."""

from __future__ import annotations

from typing import Any

import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
from trnsim.isa.opcodes import Engine, Opcode
from trnsim.kernels._engine_load import EngineLoad, instruction_ns
from trnsim.nki import TensorSpec


def _estimates(target: str, n: int) -> dict[str, float]:
    """Run EngineLoad's estimates inside a traced kernel (they read the target from the trace)."""
    got: dict[str, float] = {}

    @nki.jit
    def probe(x):
        load = EngineLoad()
        a = nl.ndarray((128, n), nl.bfloat16, buffer=nl.sbuf)
        b = nl.ndarray((128, n), nl.bfloat16, buffer=nl.sbuf)
        ps = nl.ndarray((128, n), nl.float32, buffer=nl.psum)
        got["tt_bf16_add"] = load.vector_tensor_cycles(n, a, b, op="add")
        got["tt_bf16_divide"] = load.vector_tensor_cycles(n, a, b, op="divide")
        got["tt_psum"] = load.vector_tensor_cycles(n, a, ps, op="multiply")
        got["stt_bf16_sub_mul"] = load.fused_cycles(n, a, b, ops="subtract,multiply")
        got["stt_bf16_mul_mul"] = load.fused_cycles(n, a, b)
        got["act_reduce"] = load.activation_cycles(n, reduce=True)
        got["gpsimd_tt"] = load.gpsimd_tensor_cycles(n, a, b)
        got["bn_stats_small"] = load.bn_stats_cycles(16, a)
        got["ns_tt_gpsimd"] = instruction_ns(Opcode.TENSOR_TENSOR, Engine.GPSIMD, n, n_inputs=2)
        return x

    nki.profile(probe, target=target, mode="timing")(TensorSpec((128, 4), "float32"))
    return got


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_estimates_follow_the_documented_costs(target: str) -> None:
    n = 512
    core: Any = nki.get_target_spec(target).core
    ii, bf16 = core.vector.min_ii_cycles, core.vector.bf16_speedup
    got = _estimates(target, n)
    assert got["tt_bf16_add"] == max(ii, n / bf16)  # fast op, bf16 SBUF: N, then the perf mode
    assert got["tt_bf16_divide"] == max(ii, 2 * n / bf16)  # other ops: 2N
    assert got["tt_psum"] == max(ii, n)  # a PSUM input: N, no bf16 mode (the fp32 operand)
    assert got["stt_bf16_sub_mul"] == n  # scalar_tensor_tensor: N for bf16 subtract-then-multiply
    assert got["stt_bf16_mul_mul"] == 2 * n
    assert got["act_reduce"] == max(core.scalar.min_ii_cycles, n) + core.scalar.min_ii_cycles
    gp = core.gpsimd.start_cycles + 2 * n  # start-up + one element per cycle per input
    assert got["gpsimd_tt"] == gp
    assert got["bn_stats_small"] == ii  # max(MIN_II, N)
    assert got["ns_tt_gpsimd"] == pytest.approx(gp / core.gpsimd.clock_ghz)
