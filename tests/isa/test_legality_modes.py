"""An instruction's rules hold in functional and timing-only runs alike (the record checks the call,
not the values): a kernel refused in one mode is refused, with the same error, in the other."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError, TrnsimError, UsageError
from trnsim.nki import TensorSpec


def bitwise_tensor_tensor(x):
    t = nl.load(x)
    y = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=y, data1=t, data2=t, op=nl.bitwise_and)
    return y


def bitwise_tensor_scalar(x):
    t = nl.load(x)
    y = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=y, data=t, op0=nl.left_shift, operand0=1)
    return y


def bitwise_reduce(x):
    t = nl.load(x)
    y = nl.ndarray((t.shape[0], 1), t.dtype, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=y, op=nl.bitwise_or, data=t, axis=1, keepdims=True)
    return y


def divide_on_scalar_engine(x):
    t = nl.load(x)
    y = nl.ndarray(t.shape, t.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=y, data=t, op0=nl.divide, operand0=2.0, engine=nisa.scalar_engine)
    return y


def matmul_into_sbuf(x):
    t = nl.load(x)
    y = nl.ndarray((t.shape[1], t.shape[1]), nl.float32, buffer=nl.sbuf)
    nisa.nc_matmul(y, t, t)
    return y


def kernel_of(body: Callable[..., object]) -> object:
    @nki.jit
    def kernel(x):
        body(x)
        return nl.ndarray((1, 1), nl.float32, buffer=nl.shared_hbm)

    return kernel


CASES = [
    (bitwise_tensor_tensor, DtypeError, "int-op"),
    (bitwise_tensor_scalar, DtypeError, "int-op"),
    (bitwise_reduce, DtypeError, "int-op"),
    (divide_on_scalar_engine, UsageError, "engine"),
    (matmul_into_sbuf, UsageError, "buffer"),
]


@pytest.mark.parametrize(("body", "error", "rule"), CASES, ids=[c[0].__name__ for c in CASES])
def test_refused_in_both_modes(rng: np.random.Generator, body: Callable[..., object], error: type, rule: str) -> None:
    x = rng.standard_normal((128, 64)).astype(np.float32)
    kernel = kernel_of(body)
    with pytest.raises(error) as functional:
        nki.profile(kernel, target="trn2", mode="functional")(x)
    with pytest.raises(error) as timing:
        nki.profile(kernel, target="trn2", mode="timing")(TensorSpec(x.shape, "float32"))
    for e in (functional.value, timing.value):
        assert isinstance(e, TrnsimError) and e.rule == rule
    assert str(functional.value).split("] ", 1)[1] == str(timing.value).split("] ", 1)[1]


def test_bitwise_op_on_integer_tiles_is_timed() -> None:
    prof = nki.profile(kernel_of(bitwise_tensor_tensor), target="trn2", mode="timing")(TensorSpec((128, 64), "int32"))
    assert any(i.label == "tensor_tensor(bitwise_and)" for i in prof.instructions)
