"""Shared setup for the report tests: kernel profiles whose timelines carry the allocation records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.nki.kernel import trace
from trnsim.runtime.profile import Profile
from trnsim.sim import MemoryKind, schedule


@pytest.fixture(autouse=True)
def _private_kernel_cache(tmp_path, monkeypatch):
    """No test here runs the compiler; should one start to, it gets its own kernel cache, not the user's."""
    monkeypatch.setenv("TRNSIM_CACHE_DIR", str(tmp_path / "cache"))


@nki.jit
def matmul_kernel(a_t, b):
    """out[M, N] = a_t.T @ b; a_t [K, M], b [K, N], K and M multiples of 128, N of 512 (or N <= 512)."""
    k_dim, m_dim = a_t.shape
    n_dim = b.shape[1]
    n_tile = min(512, n_dim)
    out = nl.ndarray((m_dim, n_dim), nl.float32, buffer=nl.shared_hbm)
    for m in nl.affine_range(m_dim // 128):
        for n in nl.affine_range(n_dim // n_tile):
            acc = nl.ndarray((128, n_tile), nl.float32, buffer=nl.psum)
            for k in nl.affine_range(k_dim // 128):
                lhs = nl.ndarray((128, 128), a_t.dtype, buffer=nl.sbuf)
                rhs = nl.ndarray((128, n_tile), b.dtype, buffer=nl.sbuf)
                nisa.dma_copy(dst=lhs, src=a_t[k * 128 : (k + 1) * 128, m * 128 : (m + 1) * 128])
                nisa.dma_copy(dst=rhs, src=b[k * 128 : (k + 1) * 128, n * n_tile : (n + 1) * n_tile])
                nisa.nc_matmul(acc, lhs, rhs)
            res = nl.ndarray((128, n_tile), nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(dst=res, src=acc)
            nisa.dma_copy(dst=out[m * 128 : (m + 1) * 128, n * n_tile : (n + 1) * n_tile], src=res)
    return out


@nki.jit
def exp_scale_kernel(x):
    """y = exp(x) * 0.5, 128 rows per tile: Scalar and Vector engines with DMA in between."""
    rows, cols = x.shape
    out = nl.ndarray((rows, cols), x.dtype, buffer=nl.shared_hbm)
    for r in nl.affine_range(rows // 128):
        t = nl.load(x[r * 128 : (r + 1) * 128, :])
        e = nl.ndarray((128, cols), nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=e, op=nl.exp, data=t)
        y = nl.ndarray((128, cols), x.dtype, buffer=nl.sbuf)
        nisa.tensor_scalar(dst=y, data=e, op0=nl.multiply, operand0=0.5)
        nl.store(out[r * 128 : (r + 1) * 128, :], y)
    return out


def profile_with_allocations(kernel: Any, *args: Any, mode: str = "functional") -> tuple[Profile, Any]:
    """Trace and schedule a kernel the way nki.profile does, keeping the machine's allocation records."""
    traced = trace(kernel, args, {}, target="trn2", mode=mode)  # type: ignore[arg-type]
    m = traced.machine
    timeline = schedule(m.instructions, traced.spec, traced.n_cores, m.reuse, m.allocations)
    prof = Profile(
        kernel_name=kernel.name,
        target=traced.spec.name,
        mode=mode,
        spec=traced.spec,
        instructions=m.instructions,
        timeline=timeline,
        warnings=m.warnings,
        sbuf_peak_bytes=m.peak_bytes(MemoryKind.SBUF),
        psum_peak_bytes=m.peak_bytes(MemoryKind.PSUM),
    )
    return prof, m


@pytest.fixture
def random_matmul(request) -> Callable[[np.random.Generator], tuple[Profile, Any, tuple[int, int, int]]]:
    """random_matmul(rng, cores=1) -> (profile, machine, (K, M, N)) for random tile-multiple shapes, bf16 inputs;
    with cores > 1, an SPMD grid of that many programs (each does the whole matmul on its own core)."""

    def make(rng: np.random.Generator, cores: int = 1) -> tuple[Profile, Any, tuple[int, int, int]]:
        import ml_dtypes

        k, m = 128 * int(rng.integers(1, 4)), 128 * int(rng.integers(1, 3))
        n = int(rng.choice([128, 256, 512, 1024]))
        a = rng.standard_normal((k, m)).astype(ml_dtypes.bfloat16)
        b = rng.standard_normal((k, n)).astype(ml_dtypes.bfloat16)
        prof, machine = profile_with_allocations(matmul_kernel[cores] if cores > 1 else matmul_kernel, a, b)
        return prof, machine, (k, m, n)

    return make


@pytest.fixture
def exp_profile() -> Callable[[np.ndarray], tuple[Profile, Any]]:
    """exp_profile(x) -> (profile, machine) of exp_scale_kernel on x."""
    return lambda x: profile_with_allocations(exp_scale_kernel, x)
