"""isa.semantics' fp32 arithmetic against numpy's, bit for bit, on fresh random data with NaN, inf and signed zeros
(the semantics skip copies and a unit scale's multiply; the values must not change)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from trnsim.isa import semantics as sem

F32 = np.float32
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf/NaN operands overflow on purpose


def _data(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = (rng.standard_normal(shape) * 4).astype(F32)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=min(8, flat.size), replace=False)
    flat[picks] = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e38, 3e38], dtype=F32)[: picks.size]
    return x


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == F32 and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


@pytest.mark.parametrize("func", ["exp", "tanh", "sigmoid", "silu", "copy", "identity", "relu", "square"])
@pytest.mark.parametrize("scale_kind", ["unit", "scalar", "vector"])
def test_activation_bits(func: str, scale_kind: str) -> None:
    rng = np.random.default_rng()
    x = _data(rng, (16, 3, 20))
    scale: Any = {"unit": 1.0, "scalar": float(rng.uniform(-2, 2)), "vector": rng.uniform(-2, 2, (16, 1)).astype(F32)}[
        scale_kind
    ]
    bias = rng.uniform(-1, 1, (16, 1)).astype(F32) if rng.random() < 0.5 else None
    with np.errstate(all="ignore"):
        got = sem.activation(func, x, scale, bias)
    ref = x.reshape(16, -1) * (F32(scale) if isinstance(scale, float) else scale)
    if bias is not None:
        ref = ref + bias
    ref = ref.astype(F32)
    with np.errstate(all="ignore"):
        funcs: dict[str, Any] = {
            "exp": np.exp,
            "tanh": np.tanh,
            "sigmoid": lambda v: (0.5 * (np.tanh(0.5 * v) + 1.0)).astype(F32),
            "silu": lambda v: v * (0.5 * (np.tanh(0.5 * v) + 1.0)).astype(F32),
            "copy": lambda v: v,
            "identity": lambda v: v,
            "relu": lambda v: np.maximum(v, F32(0)),
            "square": np.square,
        }
        expect = funcs[func](ref).astype(F32)
    _same_bits(got, expect.reshape(x.shape))
    if func in ("copy", "identity"):
        assert not np.shares_memory(got, x)  # a caller may write the result where the input lives


def test_scalar_tensor_tensor_and_reciprocal_bits() -> None:
    rng = np.random.default_rng()
    x, y = _data(rng, (32, 48)), _data(rng, (32, 48))
    s = rng.uniform(-3, 3, (32, 1)).astype(F32)
    with np.errstate(all="ignore"):
        for op0, op1, f0, f1 in [
            ("multiply", "add", np.multiply, np.add),
            ("subtract", "maximum", np.subtract, np.maximum),
            ("divide", "multiply", np.divide, np.multiply),
        ]:
            for r0 in (False, True):
                for r1 in (False, True):
                    t = (f0(s, x) if r0 else f0(x, s)).astype(F32)
                    ref = (f1(y, t) if r1 else f1(t, y)).astype(F32)
                    _same_bits(sem.scalar_tensor_tensor(x, op0, s, op1, y, r0, r1), ref)
        _same_bits(sem.reciprocal(x), (F32(1.0) / x).astype(F32))
    before = x.copy()
    with np.errstate(all="ignore"):
        sem.scalar_tensor_tensor(x, "add", 1.0, "multiply", y)
    _same_bits(x, before)  # inputs untouched
