"""The batched transpose walked over its batches (compiler/loop_extrapolation.py `_transpose`): within 1% of full
simulation on fresh random shapes (a sum over a middle axis, such as DeepSeek-V3's combine of its top-8 expert
outputs [tokens, 8, hidden], is lowered to one of these), exact FLOPs, HBM bytes and instruction count; batches too
few to probe, and 2-D transposes, are simulated in full."""

from __future__ import annotations

import random

import pytest

from trnsim import dtypes, kernels
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import extended_cost, run_kernel
from trnsim.compiler.loop_extrapolation import TRANSPOSE_FIRST
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
