"""Loop and grid extrapolation (compiler/loop_extrapolation.py, grid_extrapolation.py) against full simulation.

Each extended invocation is simulated in full too: the latency must agree within 1%, FLOPs and HBM bytes exactly,
the instruction count exactly for 1-D loops and within 1% for GEMM grids. Shapes are small enough to simulate in
full in a second or two, with ragged last blocks. Invocations without a steady state, and kernels without a loop
rule, must come out exactly as the full simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from trnsim import kernels
from trnsim.compiler import grid_extrapolation, loop_extrapolation
from trnsim.compiler.kernel_cache import KernelCache
from trnsim.compiler.kernel_runner import extended_cost, grid_cost, run_kernel
from trnsim.hw import load_preset
from trnsim.nki.kernel import TensorSpec

BF16 = "bfloat16"


def _t(*shape: int) -> TensorSpec:
    return TensorSpec(shape, BF16)


def _fresh() -> KernelCache:
    return KernelCache(use_disk=False)


EXTENDED = [
    # linear walked over token blocks; 9300 tokens leave a ragged last block
    ("trn2", kernels.linear, (_t(9300, 1024), _t(256, 1024)), {}),
    # batched matmul walked over its batch (attention's P V at 512 keys)
    ("trn2", kernels.batched_matmul, (_t(48, 512, 512), _t(48, 512, 128)), {}),
    # matmul walked over strips of a's rows (40000 rows: a ragged last strip; strips of 8 k-steps, shorter than
    # the look-ahead, so the probes start 16 strips in)
    ("trn1", kernels.matmul, (_t(40000, 1024), _t(1024, 512)), {}),
    # flash attention walked over (batch, head) groups, causal
    ("trn1", kernels.flash_attention, (_t(2, 12, 1024, 64),) * 3, {}),
    # decode-shaped linears walked over feature strips shorter than the DMA look-ahead: their cost per strip
    # settles late (probes of 2-4 strips extended these 9% and 4% too fast)
    ("trn2", kernels.linear, (_t(16, 2048), _t(32768, 2048)), {}),
    ("trn2", kernels.linear, (_t(1, 1024), _t(65536, 1024)), {}),
    # a single strip of tokens against a wide K-major weight (an LM head at decode) walked over its moving-side
    # blocks, with a ragged last block
    ("trn2", kernels.matmul, (_t(3, 2304), _t(2304, 112000)), {}),
    ("trn1", kernels.matmul, (_t(1, 4096), _t(4096, 115000)), {}),
]


@pytest.mark.parametrize(("target", "kernel", "args", "kwargs"), EXTENDED, ids=lambda v: getattr(v, "name", None))
def test_extended_cost_matches_full_simulation(target, kernel, args, kwargs):
    spec = load_preset(target)
    extended = extended_cost(kernel, args, kwargs, spec, _fresh())
    assert extended is not None, "the shortcut did not engage: this case no longer tests it"
    out, fast = extended
    full_out, full = run_kernel(kernel, args, kwargs, spec, False, _fresh(), extrapolate=False)
    assert fast.latency_us == pytest.approx(full.latency_us, rel=0.01)
    assert (fast.instructions, fast.flops, fast.hbm_bytes) == (full.instructions, full.flops, full.hbm_bytes)
    assert fast.outputs == full.outputs
    assert (out.shape, out.dtype) == (full_out.shape, full_out.dtype)
    for engine, busy in full.engine_busy_us.items():
        assert fast.engine_busy_us[engine] == pytest.approx(busy, rel=0.01, abs=0.01)


# Linear extended over feature strips and token blocks at once; both dims ragged. Whether a case's check probe
# agrees depends on the block planner's choices (which change with the cost model), so each case is either
# extended within 1% or falls back, and at least one must be extended.
GRIDS = [
    ("trn2", kernels.linear, (_t(6000, 512), _t(6000, 512)), {}),
    ("trn2", kernels.linear, (_t(6000, 1024), _t(6000, 1024)), {"activation": "silu"}),
    ("trn1", kernels.linear, (_t(6000, 512), _t(6000, 512)), {}),
    (
        "trn1",
        kernels.linear,
        (_t(2, 3000, 512), _t(6000, 512), _t(6000)),
        {"residual": _t(2, 3000, 6000), "activation": "gelu"},
    ),
    (
        "trn2",
        kernels.linear,
        (_t(2, 3000, 512), _t(6000, 512), _t(6000)),
        {"residual": _t(2, 3000, 6000), "activation": "gelu"},
    ),
]


def test_grid_extension_matches_full_simulation() -> None:
    extended = 0
    for target, kernel, args, kwargs in GRIDS:
        spec = load_preset(target)
        grid = grid_extrapolation.find_grid(f"trnsim.kernels.{kernel.name}", kernel.name, args, kwargs, spec)
        assert grid is not None
        fast = grid_cost(kernel, grid, spec)
        if fast is None:
            continue  # the check probe missed: the 1-D walk or full simulation takes over
        extended += 1
        _, full = run_kernel(kernel, args, kwargs, spec, False, _fresh(), extrapolate=False)
        assert fast.latency_us == pytest.approx(full.latency_us, rel=0.01)
        assert (fast.flops, fast.hbm_bytes, fast.outputs) == (full.flops, full.hbm_bytes, full.outputs)
        assert fast.instructions == pytest.approx(full.instructions, rel=0.01)
    assert extended >= 1, "no grid case passed its check probe: the grid is no longer tested"


def test_matmul_is_not_extended_over_a_grid():
    """Its blocks cost more past a few per strip (grid_extrapolation's docstring): only 1-D walks, each keeping
    the other dim at full size."""
    args = (_t(9000, 512), _t(512, 9000))
    spec = load_preset("trn2")
    assert grid_extrapolation.find_grid("trnsim.kernels.matmul", "matmul", args, {}, spec) is None
    assert loop_extrapolation.find_loop("trnsim.kernels.matmul", "matmul", args, {}, spec) is not None


def test_extension_is_deterministic_and_cached():
    spec = load_preset("trn2")
    args = (_t(48, 512, 512), _t(48, 512, 128))
    first = extended_cost(kernels.batched_matmul, args, {}, spec, _fresh())
    second = extended_cost(kernels.batched_matmul, args, {}, spec, _fresh())
    assert first is not None and second is not None
    assert first[1] == second[1]
    cache = _fresh()
    run_kernel(kernels.batched_matmul, args, {}, spec, False, cache, extrapolate=True)
    assert (cache.hits, cache.misses) == (0, 1)
    _, again = run_kernel(kernels.batched_matmul, args, {}, spec, False, cache, extrapolate=True)
    assert (cache.hits, cache.misses) == (1, 1) and again == first[1]


# Not extended: no steady state within the probes (short attention groups on trn2), a loop too short to be
# worth probing, kernels without a loop rule, and anything with values (functional runs).
FULL = [
    ("trn2", kernels.flash_attention, (_t(4, 8, 512, 128),) * 3, {}),
    ("trn2", kernels.batched_matmul, (_t(6, 384, 256), _t(6, 256, 200)), {}),
    ("trn2", kernels.rmsnorm, (_t(4100, 512), _t(512)), {}),
    ("trn2", kernels.softmax, (_t(8, 300, 700),), {}),
    ("trn2", kernels.conv2d, (_t(2, 32, 20, 20), _t(64, 32, 3, 3)), {"padding": 1}),
]


@pytest.mark.parametrize(("target", "kernel", "args", "kwargs"), FULL, ids=lambda v: getattr(v, "name", None))
def test_invocations_without_a_steady_loop_are_simulated_in_full(target, kernel, args, kwargs):
    spec = load_preset(target)
    assert extended_cost(kernel, args, kwargs, spec, _fresh()) is None
    _, asked = run_kernel(kernel, args, kwargs, spec, False, _fresh(), extrapolate=True)
    _, full = run_kernel(kernel, args, kwargs, spec, False, _fresh(), extrapolate=False)
    assert asked == full


def test_functional_arguments_are_never_extended():
    rng = np.random.default_rng()
    a = rng.standard_normal((32, 128, 128)).astype(np.float32)
    b = rng.standard_normal((32, 128, 64)).astype(np.float32)
    spec = load_preset("trn2")
    assert (
        loop_extrapolation.find_loop("trnsim.kernels.matmul.batched_matmul[1]", "batched_matmul", (a, b), {}, spec)
        is None
    )


def test_unsteady_probes_are_rejected():
    """Slopes that disagree (a pipeline still filling) give no extension, whatever the count."""

    class Cost:
        def __init__(self, latency: float) -> None:
            self.latency_us = latency

    loop = loop_extrapolation.Loop(100, lambda n: ((), {}), lambda out: None, first=2, step=2)
    assert loop_extrapolation.extend(loop, (2, 4, 6), [Cost(10.0), Cost(14.0), Cost(20.0)]) is None
    # the window moves on while all probes stay within half the loop: 2 + 4 + ... + 12 = 42, with 14 it is 56
    assert list(loop.probe_sets()) == [(2, 4, 6), (4, 6, 8), (6, 8, 10), (8, 10, 12)]
    doubling = loop_extrapolation.Loop(100, lambda n: ((), {}), lambda out: None, first=2, doubling=True)
    # 2 + 4 + 8 + 16 = 30 <= 50, with 32 it is 62
    assert list(doubling.probe_sets()) == [(2, 4, 8), (4, 8, 16)]


def test_extension_is_opt_in(monkeypatch):
    """Off by default (serving step grids need costs that grow with the step); on for an estimate that asks."""
    from trnsim.compiler.kernel_runner import extrapolation, extrapolation_enabled

    monkeypatch.delenv("TRNSIM_EXTRAPOLATE", raising=False)
    assert not extrapolation_enabled()
    with extrapolation(True):
        assert extrapolation_enabled()
    monkeypatch.setenv("TRNSIM_EXTRAPOLATE", "1")
    assert extrapolation_enabled()
    with extrapolation(False):
        assert not extrapolation_enabled()
