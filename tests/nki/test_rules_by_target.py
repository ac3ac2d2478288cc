"""Rules that differ by NeuronCore generation come from the preset, not from code."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError, UsageError


@nki.jit
def matmul_into(a_t, b, out_dtype):
    lhs = nl.load(a_t)
    rhs = nl.load(b)
    acc = nl.ndarray((a_t.shape[1], b.shape[1]), out_dtype, buffer=nl.psum)
    nisa.nc_matmul(acc, lhs, rhs)
    res = nl.ndarray(acc.shape, nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)
    out = nl.ndarray(acc.shape, nl.float32, buffer=nl.shared_hbm)
    nl.store(out, res)
    return out


def test_bf16_psum_output_only_on_nc_v4(rng: np.random.Generator) -> None:
    a_t = rng.standard_normal((128, 64)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((128, 256)).astype(ml_dtypes.bfloat16)
    for target in ("trn1", "trn2"):
        with pytest.raises(DtypeError, match="writes float32 into PSUM"):
            nki.simulate(matmul_into, target=target)(a_t, b, nl.bfloat16)
    out = nki.simulate(matmul_into, target="trn3")(a_t, b, nl.bfloat16)
    ref = (a_t.astype(np.float32).T @ b.astype(np.float32)).astype(ml_dtypes.bfloat16).astype(np.float32)
    # PSUM held bf16 values; the fp32 sums' order is BLAS's (trnsim's tile matmuls run on one BLAS thread, the
    # reference on numpy's default threads), so a sum may round to the neighbouring bf16 (at most 2^-7 relative)
    np.testing.assert_array_equal(out, np.asarray(out).astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_allclose(out, ref, rtol=2.0**-7)


@nki.jit
def scalar_engine_tensor_scalar(x):
    t = nl.load(x)
    y = nl.ndarray(x.shape, x.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=y, data=t, op0=nl.multiply, operand0=3.0, engine=nisa.scalar_engine)
    out = nl.ndarray(x.shape, x.dtype, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


def test_scalar_engine_alu_only_from_nc_v3(rng: np.random.Generator) -> None:
    x = rng.standard_normal((64, 32)).astype(np.float32)
    with pytest.raises(UsageError, match="scalar engine"):
        nki.simulate(scalar_engine_tensor_scalar, target="trn1")(x)
    np.testing.assert_allclose(nki.simulate(scalar_engine_tensor_scalar, target="trn2")(x), 3 * x, rtol=1e-6)


@nki.jit
def exp_with_sum(x):
    t = nl.load(x)
    y = nl.ndarray(x.shape, nl.float8_e4m3, buffer=nl.sbuf)
    total = nl.ndarray((x.shape[0], 1), nl.float32, buffer=nl.sbuf)
    nisa.activation(dst=y, op=nl.exp, data=t, reduce_op=nl.add, reduce_res=total)
    out = nl.ndarray((x.shape[0], 1), nl.float32, buffer=nl.shared_hbm)
    nl.store(out, total)
    return out


def test_activation_reduction_sums_fp32_results_not_the_cast_output(rng: np.random.Generator) -> None:
    """ScalarE reduces its fp32 results; summing the fp8-rounded copies would lose ~6% per element."""
    x = rng.uniform(0.0, 1.0, (128, 512)).astype(np.float32)
    total = nki.simulate(exp_with_sum)(x)
    np.testing.assert_allclose(total[:, 0], np.exp(x.astype(np.float64)).sum(axis=1), rtol=1e-5)
