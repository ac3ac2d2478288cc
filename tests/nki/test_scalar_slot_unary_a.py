"""The ALU's unary arithmetic ops (abs, square, relu, rsqrt, reciprocal) in tensor_scalar's and
tensor_scalar_reduce's op slots (NKI docs: "Arithmetic Unary" in the ALU operator table; the operand "must be
None or 0 when op0 is a unary operator (e.g., nl.abs)"), against numpy on fresh random data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError

UNARY = {
    "abs": (nl.abs, np.abs),
    "square": (nl.square, np.square),
    "relu": (nl.relu, lambda x: np.maximum(x, 0)),
    "rsqrt": (nl.rsqrt, lambda x: 1 / np.sqrt(x)),
    "reciprocal": (nl.reciprocal, lambda x: 1 / x),
}


@nki.jit
def scalar_two_ops(x, op0, operand0, op1, operand1, engine=nisa.engine.unknown):
    t = nl.load(x)
    y = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=y, data=t, op0=op0, operand0=operand0, op1=op1, operand1=operand1, engine=engine)
    out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


@nki.jit
def unary_then_reduce(x, op0, operand0, reduce_op):
    t = nl.load(x)
    y = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    r = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_scalar_reduce(dst=y, data=t, op0=op0, operand0=operand0, reduce_op=reduce_op, reduce_res=r)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    red = nl.ndarray((x.shape[0], 1), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    nl.store(red, r)
    return out, red


def _data(rng: np.random.Generator, name: str) -> np.ndarray:
    p, n = int(rng.integers(1, 129)), int(rng.integers(1, 300))
    x = rng.standard_normal((p, n)).astype(np.float32)
    return np.abs(x) + np.float32(0.5) if name in ("rsqrt", "reciprocal") else x


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op0_and_op1_of_tensor_scalar(rng: np.random.Generator, name: str) -> None:
    op, ref = UNARY[name]
    x = _data(rng, name)
    scale = np.float32(rng.uniform(0.5, 2.0))
    # op0 unary (operand None), then multiply; multiply, then op1 unary (operand 0)
    got0 = nki.simulate(scalar_two_ops)(x, op, None, nl.multiply, float(scale))
    np.testing.assert_allclose(got0, ref(x) * scale, rtol=1e-6)
    got1 = nki.simulate(scalar_two_ops)(x, nl.multiply, float(scale), op, 0)
    np.testing.assert_allclose(got1, ref(x * scale), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, nl.bfloat16])
def test_abs_max_reduce_as_rmsnorm_quant_writes_it(rng: np.random.Generator, dtype: Any) -> None:
    """nki-library's rmsnorm_quant: tensor_scalar_reduce(op0=nl.abs, operand0=0.0, reduce_op=nl.maximum)."""
    x = rng.standard_normal((int(rng.integers(1, 129)), int(rng.integers(8, 512)))).astype(dtype)
    out, red = nki.simulate(unary_then_reduce)(x, nl.abs, 0.0, nl.maximum)
    want = np.abs(x.astype(np.float32))
    np.testing.assert_array_equal(out, want.astype(dtype))
    np.testing.assert_array_equal(red[:, 0], want.max(axis=1))


def test_unary_square_sum_reduce(rng: np.random.Generator) -> None:
    x = rng.standard_normal((64, 200)).astype(np.float32)
    _, red = nki.simulate(unary_then_reduce)(x, nl.square, None, nl.add)
    np.testing.assert_allclose(red[:, 0], np.square(x).sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("mode", ["simulate", "profile"])
def test_unary_op_rules(rng: np.random.Generator, mode: str) -> None:
    run = nki.simulate if mode == "simulate" else nki.profile
    x = rng.standard_normal((8, 16)).astype(np.float32)
    with pytest.raises(UsageError, match="None or 0 when its op is the unary abs"):
        run(unary_then_reduce)(x, nl.abs, 2.0, nl.maximum)
    with pytest.raises(UsageError, match="None or 0"):
        run(scalar_two_ops)(x, nl.add, 1.0, nl.square, 3.0)
    with pytest.raises(UsageError, match="scalar engine supports only add and multiply"):
        run(scalar_two_ops, target="trn2")(x, nl.abs, None, nl.multiply, 2.0, nisa.engine.scalar)
