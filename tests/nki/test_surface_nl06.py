"""nki.language names of NKI 0.6: abs_min (NC-v4) and gelu_apprx_sigmoid_dx against numpy formulas,
gather_flattened against np.take_along_axis (the NKI docs' own check), and the op values average, prelu
and bypass; their rules as clear errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError


@nki.jit
def binary(x, y, op):
    a, b = nl.load(x), nl.load(y)
    c = op(a, b)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, c)
    return out


def test_abs_min_returns_the_signed_input_of_smaller_magnitude(rng: np.random.Generator) -> None:
    x = rng.standard_normal((128, 300)).astype(np.float32)
    y = rng.standard_normal((128, 1)).astype(np.float32) * np.float32(2)
    x[0, :4] = [1.0, -1.0, 3.0, -3.0]
    y[0, 0] = -1.0  # ties return y (NKI docs' example)
    got = nki.simulate(binary, target="trn3")(x, np.broadcast_to(y, x.shape).copy(), nl.abs_min)
    yb = np.broadcast_to(y, x.shape)
    np.testing.assert_array_equal(got, np.where(np.abs(x) < np.abs(yb), x, yb))
    assert list(got[0, :4]) == [-1.0, -1.0, -1.0, -1.0]


def test_abs_min_needs_neuroncore_v4() -> None:
    x = np.ones((4, 4), np.float32)
    with pytest.raises(UsageError, match="NeuronCore-v4") as info:
        nki.simulate(binary, target="trn2")(x, x, nl.abs_min)
    assert "test_surface_nl06.py" in str(info.value)


@nki.jit
def unary(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, nl.gelu_apprx_sigmoid_dx(nl.load(x)))
    return out


def test_gelu_apprx_sigmoid_dx_is_the_derivative_of_gelu_apprx_sigmoid(rng: np.random.Generator) -> None:
    x = (rng.standard_normal((64, 200)) * 4).astype(np.float64)
    h = 1e-4  # central difference of x * sigmoid(1.702 x), in float64

    def f(v: np.ndarray) -> np.ndarray:
        return v / (1 + np.exp(-1.702 * v))

    want = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(nki.simulate(unary)(x.astype(np.float32)), want, rtol=1e-4, atol=1e-5)


@nki.jit
def gather(data, indices, axis):
    d, i = nl.load(data), nl.load(indices)
    r = nl.gather_flattened(data=d, indices=i, axis=axis)
    out = nl.ndarray(indices.shape, dtype=data.dtype, buffer=nl.shared_hbm)
    nl.store(out, r)
    return out


@pytest.mark.parametrize("idx_dtype", [np.uint32, np.int32])
@pytest.mark.parametrize("axis", [0, -1])
def test_gather_flattened_matches_take_along_axis(rng: np.random.Generator, idx_dtype: Any, axis: int) -> None:
    n, m, k = int(rng.integers(1, 129)), int(rng.integers(1, 300)), int(rng.integers(1, 64))
    data = rng.standard_normal((n, m)).astype(np.float32)
    idx = rng.integers(0, m, size=(n, k)).astype(idx_dtype)
    got = nki.simulate(gather)(data, idx, axis)
    np.testing.assert_array_equal(got, np.take_along_axis(data, idx.astype(np.int64), axis=-1))


def test_gather_flattened_rules() -> None:
    data = np.zeros((4, 8), np.float32)
    with pytest.raises(UsageError, match="axis 0, the default, or the last axis"):
        nki.simulate(gather)(data.reshape(4, 2, 4), np.zeros((4, 3), np.uint32), 1)
    with pytest.raises(UsageError, match="indices must be an integer tile"):
        nki.simulate(gather)(data, np.zeros((4, 3), np.float32), 0)


@nki.jit
def partition_mean(x):
    y = nl.ndarray((1, x.shape[1]), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_partition_reduce(y, nl.average, nl.load(x))
    out = nl.ndarray((1, x.shape[1]), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


def test_op_values_are_ops_not_functions(rng: np.random.Generator) -> None:
    x = rng.standard_normal((100, 20)).astype(np.float32)
    np.testing.assert_allclose(nki.simulate(partition_mean)(x), x.mean(axis=0, keepdims=True), rtol=1e-5, atol=1e-6)
    for op in (nl.average, nl.prelu, nl.bypass):
        with pytest.raises(UsageError, match="is an op value"):
            op(x)


def test_gelu_apprx_sigmoid_dx_takes_a_tile() -> None:
    @nki.jit
    def on_a_number():
        nl.gelu_apprx_sigmoid_dx(1.0)
        out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
        return out

    with pytest.raises(UsageError, match=r"nl\.gelu_apprx_sigmoid_dx") as info:
        nki.simulate(on_a_number)()
    assert "test_surface_nl06.py" in str(info.value)
