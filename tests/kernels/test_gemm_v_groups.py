"""The GEMM's grouped V loads (several K-major k-tiles per DMA, _gemm / _gemm_plan) against numpy on fresh
random inputs, and the planner's use of them at the size where the per-transfer DMA overhead bounds V."""

from __future__ import annotations

import sys

import ml_dtypes
import numpy as np
import pytest

import trnsim.kernels as K
import trnsim.nki as nki
from trnsim.hw import load_preset
from trnsim.kernels._gemm_plan import GemmPlan, GemmProblem, plan_gemm

mm = sys.modules[K.matmul.fn.__module__]  # the module behind the exports (the tests swap its planner)
BF16 = ml_dtypes.bfloat16


def _rand(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape).astype(BF16)


def _f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32)


def _run(kernel, *args):
    return nki.profile(kernel, target="trn2")(*args).outputs


def _close(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.dtype == np.dtype(BF16)
    tol = 1e-2  # one bf16 rounding of the output
    np.testing.assert_allclose(_f32(got), ref, rtol=tol, atol=tol * float(np.abs(ref).max()))


@pytest.mark.parametrize("v_resident", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_grouped_v_loads(rng, monkeypatch, v_resident, batched) -> None:
    """K-major V k-tiles loaded 4 per DMA (v_group): groups never cross a V block, the ragged last k-step
    (K = 1100: 8 full steps and 76 rows) loads alone, and batched_matmul's per-batch views keep their
    offsets; several strips, streaming or resident V."""
    plan = GemmPlan(
        strip_tiles=1,
        v_block=512,
        k_chunk=256,
        v_resident=v_resident,
        dma_ahead=12,
        tail_growth=1.5,
        acc_sets=2,
        transient_banks=2,
        transpose_ahead=2,
        sbuf_bytes=0,
        estimate_ns=0.0,
        v_group=4,
    )
    monkeypatch.setattr(mm, "plan_gemm", lambda problem, core: plan)
    if batched:
        a, b = _rand(rng, (2, 200, 1100)), _rand(rng, (2, 1100, 700))
        got, ref = _run(K.batched_matmul, a, b), np.einsum("bmk,bkn->bmn", _f32(a), _f32(b))
    else:
        a, b = _rand(rng, (300, 1100)), _rand(rng, (1100, 700))
        got, ref = _run(K.matmul, a, b), _f32(a) @ _f32(b)
    _close(got, ref)


def test_plan_groups_v_loads_for_the_big_gemm() -> None:
    """At 4096 x 8192 x 8192 bf16 a [128, v_block] k-tile of V is near the per-transfer overhead's knee, so
    the planner loads several per DMA and, with V that cheap, takes taller strips (less V re-read)."""
    for target in ("trn1", "trn2"):
        plan = plan_gemm(GemmProblem(4096, 8192, 8192, 2, 2, False, False, False), load_preset(target).core)
        assert plan.v_group > 1 and plan.strip_tiles * plan.v_block >= 2048
