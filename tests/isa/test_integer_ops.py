"""Bitwise ALU ops act on raw integer bits (never rounded through fp32); masked reductions use identities."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError

OPS = {
    "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
}


@nki.jit
def tt_kernel(a, b, op):
    x = nl.load(a)
    y = nl.load(b)
    z = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=z, data1=x, data2=y, op=op)
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    nl.store(out, z)
    return out


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", [np.uint32, np.int32])
def test_bitwise_tensor_tensor_is_bit_exact(rng: np.random.Generator, name: str, dtype: type) -> None:
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, size=(64, 96), dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, size=(64, 96), dtype=dtype, endpoint=True)
    out = nki.simulate(tt_kernel)(a, b, getattr(nl, name))
    np.testing.assert_array_equal(out, OPS[name](a, b))


@nki.jit
def shift_and_mask(a, shift, mask_bits):
    x = nl.load(a)
    z = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
    nisa.tensor_scalar(dst=z, data=x, op0=nl.right_shift, operand0=shift, op1=nl.bitwise_and, operand1=mask_bits)
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    nl.store(out, z)
    return out


def test_shift_and_mask_on_uint32(rng: np.random.Generator) -> None:
    a = rng.integers(0, 2**32 - 1, size=(128, 64), dtype=np.uint32, endpoint=True)
    shift = int(rng.integers(0, 24))
    out = nki.simulate(shift_and_mask)(a, shift, 0xFF)
    np.testing.assert_array_equal(out, (a >> np.uint32(shift)) & np.uint32(0xFF))


def test_bitwise_op_on_float_tile_is_rejected(rng: np.random.Generator) -> None:
    a = rng.standard_normal((8, 8)).astype(np.float32)
    with pytest.raises(DtypeError, match="integer bits"):
        nki.simulate(tt_kernel)(a, a, nl.bitwise_and)


@nki.jit
def masked_row_all(a, valid_cols):
    x = nl.load(a)
    i_f = nl.arange(a.shape[1])[None, :]
    r = nl.ndarray((a.shape[0], 1), nl.float32, buffer=nl.sbuf)
    nisa.tensor_reduce(dst=r, op=nl.logical_and, data=x, axis=1, keepdims=True)
    masked = nl.all(x, axis=[1], mask=(i_f < valid_cols))
    out = nl.ndarray((a.shape[0], 2), nl.float32, buffer=nl.shared_hbm)
    nl.store(out[:, 0:1], r)
    nl.store(out[:, 1:2], masked)
    return out


def test_masked_logical_reduction_ignores_masked_lanes(rng: np.random.Generator) -> None:
    a = (rng.random((64, 32)) < 0.95).astype(np.float32)
    a[:, 20:] = 0.0  # masked-out lanes would make every row false if they counted
    out = nki.simulate(masked_row_all)(a, 20)
    np.testing.assert_array_equal(out[:, 0], a.all(axis=1).astype(np.float32))
    np.testing.assert_array_equal(out[:, 1], a[:, :20].all(axis=1).astype(np.float32))
