"""Loop extension of the kernels an MoE layer spends its simulation on (compiler/loop_walks_moe.py): the batched
transpose walked over its batches (a sum over a middle axis, such as DeepSeek-V3's combine of its top-8 expert
outputs [tokens, 8, hidden], is lowered to one) and the grouped expert matmul walked over equal-sized experts. Each
is within 1% of full simulation on fresh random shapes, with exact FLOPs, HBM bytes and instruction count; too few
batches or experts, experts of different sizes, and 2-D transposes are simulated in full."""

from __future__ import annotations

import random

import pytest

from trnsim import dtypes, kernels
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import extended_cost, run_kernel
from trnsim.compiler.loop_walks_moe import GROUPED_FIRST, TRANSPOSE_FIRST
from trnsim.hw.presets import load_preset
from trnsim.nki.kernel import TensorSpec

# the probes (a, 2a, 4a batches from a = TRANSPOSE_FIRST) may be at most half of the batches
FEWEST = 2 * 7 * TRANSPOSE_FIRST


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_batched_transpose_extended_within_one_percent(target: str) -> None:
    rng = random.Random()
    shape = (rng.randint(FEWEST, FEWEST + 150), rng.choice([2, 8, 130]), rng.choice([300, 512, 1000]))
    x = TensorSpec(shape, rng.choice([dtypes.bfloat16, dtypes.float32]))
    spec = load_preset(target)
    extended = extended_cost(kernels.transpose, (x,), {}, spec, KernelCache(use_disk=False))
    assert extended is not None, f"{shape} was not extended"
    out, fast = extended
    full_out, full = run_kernel(
        kernels.transpose, (x,), {}, spec, False, KernelCache(use_disk=False), extrapolate=False
    )
    assert fast.latency_us == pytest.approx(full.latency_us, rel=0.01), shape
    assert (fast.instructions, fast.flops, fast.hbm_bytes) == (full.instructions, full.flops, full.hbm_bytes)
    assert (out.shape, out.dtype) == (full_out.shape, full_out.dtype) == ((shape[0], shape[2], shape[1]), x.dtype)
    for engine, busy in full.engine_busy_us.items():
        assert fast.engine_busy_us[engine] == pytest.approx(busy, rel=0.01, abs=0.01)


def test_short_batches_and_matrices_are_simulated_in_full() -> None:
    spec = load_preset("trn2")
    rng = random.Random()
    short = TensorSpec((rng.randint(2, FEWEST - 1), 8, 512), dtypes.float32)
    matrix = TensorSpec((rng.choice([4096, 8192]), 512), dtypes.bfloat16)
    for x in (short, matrix):
        assert extended_cost(kernels.transpose, (x,), {}, spec, KernelCache(use_disk=False)) is None


def _grouped(groups: int, size: int, k: int, n: int) -> tuple[TensorSpec, TensorSpec, list[int]]:
    x, w = TensorSpec((groups * size, k), dtypes.bfloat16), TensorSpec((groups, k, n), dtypes.bfloat16)
    return x, w, [size * (g + 1) for g in range(groups)]


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_grouped_matmul_extended_over_equal_experts_within_one_percent(target: str) -> None:
    rng = random.Random()
    shape = (14 * GROUPED_FIRST + rng.randint(0, 24), rng.choice([64, 96]), rng.choice([256, 1024]))
    args = _grouped(*shape, rng.choice([64, 128, 256]))
    spec = load_preset(target)
    extended = extended_cost(kernels.grouped_matmul, args, {}, spec, KernelCache(use_disk=False))
    assert extended is not None, f"{shape} was not extended"
    out, fast = extended
    full_out, full = run_kernel(
        kernels.grouped_matmul, args, {}, spec, False, KernelCache(use_disk=False), extrapolate=False
    )
    assert fast.latency_us == pytest.approx(full.latency_us, rel=0.01), shape
    assert (fast.instructions, fast.flops, fast.hbm_bytes) == (full.instructions, full.flops, full.hbm_bytes)
    assert (out.shape, out.dtype) == (full_out.shape, full_out.dtype)


def test_uneven_or_few_experts_are_simulated_in_full() -> None:
    spec = load_preset("trn2")
    rng = random.Random()
    few = _grouped(rng.randint(2, 14 * GROUPED_FIRST - 1), 64, 256, 128)
    x, w, ends = _grouped(64, 64, 256, 128)
    moved = rng.randrange(63)  # one expert a row taller, the next a row shorter
    uneven = (x, w, [e + 1 if g == moved else e for g, e in enumerate(ends)])
    for args in (few, uneven):
        assert extended_cost(kernels.grouped_matmul, args, {}, spec, KernelCache(use_disk=False)) is None
