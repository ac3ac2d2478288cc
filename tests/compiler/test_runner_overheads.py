"""The kernel runner's bookkeeping shortcuts give what the work they skip would give:

- a functional run sets the one-BLAS-thread limit once (isa/semantics.one_blas_thread nested in it does nothing),
  and its values are those of a run that sets it per tile matmul, and numpy's;
- loop extension's GEMM plans (compiler/loop_extrapolation.gemm_plan) are memoised: equal to the planner's fresh
  answer for random problems, and apart per hardware core;
- the kernel cache and the step-latency store commit in write-ahead-log mode: a second connection (another
  process of a sweep) reads what the first wrote.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from trnsim import dtypes, kernels
from trnsim.compiler import loop_extrapolation
from trnsim.compiler.kernel_cache import KernelCache, KernelCost
from trnsim.compiler.kernel_runner import run_kernel
from trnsim.hw.presets import get_spec
from trnsim.isa import semantics
from trnsim.nki.kernel import TensorSpec, trace
from trnsim.serve.step_grid_store import StepLatencyStore
from trnsim.sweep.spec_override import override_spec

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [int(i["num_threads"]) for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]


def test_nested_one_blas_thread_keeps_one_limit() -> None:
    before = _blas_threads()
    if not before:
        pytest.skip("no BLAS library that threadpoolctl controls")
    with semantics.one_blas_thread():
        assert all(n == 1 for n in _blas_threads())
        inner = semantics.one_blas_thread()
        with inner:
            assert all(n == 1 for n in _blas_threads())
        assert all(n == 1 for n in _blas_threads())  # the inner block's exit left the outer limit in force
    assert _blas_threads() == before
    with semantics.one_blas_thread():  # a later block sets the limit again
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_functional_matmul_same_bits_with_the_limit_set_once() -> None:
    rng = np.random.default_rng()
    m, k, n = (int(rng.choice(s)) for s in ([128, 192, 256], [128, 384], [256, 512, 640]))
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    spec = get_spec("trn2")
    cache = KernelCache(use_disk=False)
    run_kernel(kernels.matmul, (TensorSpec(a.shape, "float32"), TensorSpec(b.shape, "float32")), {}, spec, False, cache)
    ours, _ = run_kernel(kernels.matmul, (a, b), {}, spec, True, cache)  # the limit set once, around the run
    per_tile = trace(kernels.matmul, (a, b), {}, target=spec, mode="functional", cores=1).outputs()  # per matmul
    assert np.array_equal(np.asarray(ours), np.asarray(per_tile))
    np.testing.assert_allclose(np.asarray(ours), a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-3)


def test_gemm_plan_memo_equals_the_planner() -> None:
    from trnsim.kernels._gemm_plan import GemmProblem, plan_gemm

    rng = random.Random()
    base = get_spec("trn2")
    other = override_spec(base, {"core.dma.queue_bytes_per_ns": 23})
    for _ in range(6):
        rows, cols, k = rng.choice([128, 1024, 4096, 14336]), rng.choice([1, 16, 512, 8192]), rng.choice([512, 4096])
        s, v = TensorSpec((rows, k), dtypes.bfloat16), TensorSpec((k, cols), dtypes.bfloat16)
        for spec in (base, other, base):
            got = loop_extrapolation.gemm_plan(spec, rows, cols, k, s, v, dtypes.bfloat16, True)
            problem = GemmProblem(rows, cols, k, 2, 2, True, False, False)
            assert got == plan_gemm(problem, spec.core)
    # a core with a different PSUM gets its own plan, not the memoised one of another core
    small = override_spec(base, {"core.psum.banks": 4})
    s, v = TensorSpec((4096, 4096), dtypes.bfloat16), TensorSpec((4096, 8192), dtypes.bfloat16)
    got = loop_extrapolation.gemm_plan(small, 4096, 8192, 4096, s, v, dtypes.bfloat16, True)
    assert got == plan_gemm(GemmProblem(4096, 8192, 4096, 2, 2, True, False, False), small.core)


def test_wal_commits_are_seen_by_another_connection(tmp_path) -> None:
    path = tmp_path / "kernels.sqlite"
    rng = random.Random()
    cost = KernelCost("k", rng.random() * 100, {"tensor": rng.random()}, rng.randrange(10**9), 7, 3, 1024, 0)
    KernelCache(path, use_disk=True).put("key", cost)
    other = KernelCache(path, use_disk=True)  # a fresh connection: reads through SQLite, not the memory dict
    assert other.get("key") == cost
    db = other._conn()
    assert db is not None and db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store = StepLatencyStore(tmp_path / "steps.sqlite")
    points = [((rng.randrange(1, 9), rng.randrange(1, 9), float(rng.randrange(9))), rng.random()) for _ in range(5)]
    store.save("grid", points)
    assert StepLatencyStore(tmp_path / "steps.sqlite").load("grid") == dict(points)
