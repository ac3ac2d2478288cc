"""Kernel-cache keys (compiler/kernel_runner.py arguments_signature): one invocation however a call spells its
arguments (positional, by keyword, a default passed explicitly) is simulated once; any argument that differs from
the default is a different invocation. The cached cost is checked against a direct trace of the kernel."""

from __future__ import annotations

import random

from trnsim import dtypes, kernels
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.hw.presets import get_spec
from trnsim.nki.kernel import TensorSpec, trace


def _spec(*shape: int) -> TensorSpec:
    return TensorSpec(shape, dtypes.bfloat16)


def test_spellings_of_one_call_share_one_simulation() -> None:
    rng = random.Random()
    m, k, n = rng.choice([64, 96, 128]), rng.choice([128, 256]), rng.choice([128, 192, 256])
    spec = get_spec(rng.choice(["trn1", "trn2"]))
    x, w = _spec(m, k), _spec(n, k)
    cache = KernelCache(use_disk=False)
    spellings = [
        ((x, w), {}),
        ((x, w, None), {}),
        ((x,), {"w": w, "bias": None}),
        ((), {"x": x, "w": w, "activation": None, "residual": None}),
    ]
    costs = [run_kernel(kernels.linear, a, kw, spec, False, cache, extrapolate=False)[1] for a, kw in spellings]
    assert (cache.misses, cache.hits) == (1, len(spellings) - 1)
    direct = trace(kernels.linear, (x, w), {}, target=spec, mode="timing", cores=1).profile()
    assert all(c.latency_us == direct.latency_us and c.flops == 2 * m * k * n for c in costs)
    # a value that differs from the default is another invocation
    run_kernel(kernels.linear, (x, w, _spec(n)), {}, spec, False, cache, extrapolate=False)
    run_kernel(kernels.linear, (x, w), {"activation": "silu"}, spec, False, cache, extrapolate=False)
    assert cache.misses == 3


def test_a_call_the_kernel_cannot_bind_is_keyed_as_spelled() -> None:
    """Arguments the kernel's signature rejects are not bound (the kernel reports them when it runs)."""
    from trnsim.compiler.kernel_runner import arguments_signature

    x = _spec(64, 128)
    assert arguments_signature(kernels.linear, (x,), {"nonsense": 1}) != arguments_signature(kernels.linear, (x,), {})
