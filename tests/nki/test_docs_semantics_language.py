"""nki.language as the NKI docs' own examples use it, against numpy: nl.add broadcasting a [P, 1] column against
a [1, F] row (each operand broadcast along its own dim), and nl.store of a scalar (a fill of the destination)."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
from trnsim.errors import ShapeMismatchError


@nki.jit
def add_column_and_row(col_tensor, row_tensor, swap):
    p, f = col_tensor.shape[0], row_tensor.shape[1]
    out = nl.ndarray([p, f], dtype=col_tensor.dtype, buffer=nl.shared_hbm)
    a, b = nl.load(col_tensor), nl.load(row_tensor)
    nl.store(out, nl.subtract(b, a) if swap else nl.subtract(a, b))
    return out


def test_a_column_and_a_row_broadcast_to_the_full_tile(rng: np.random.Generator) -> None:
    col = rng.standard_normal((128, 1)).astype(np.float32)
    row = rng.standard_normal((1, 384)).astype(np.float32)
    np.testing.assert_allclose(nki.simulate(add_column_and_row)(col, row, False), col - row, rtol=1e-6)
    np.testing.assert_allclose(nki.simulate(add_column_and_row)(col, row, True), row - col, rtol=1e-6)


def test_shapes_that_do_not_broadcast_are_an_error(rng: np.random.Generator) -> None:
    col = rng.standard_normal((128, 2)).astype(np.float32)
    row = rng.standard_normal((1, 384)).astype(np.float32)
    with pytest.raises(ShapeMismatchError, match="do not broadcast"):
        nki.simulate(add_column_and_row)(col, row, False)


@nki.jit
def store_scalar(like_tensor, value):
    out = nl.ndarray(like_tensor.shape, dtype=like_tensor.dtype, buffer=nl.shared_hbm)
    nl.store(out, value)
    return out


def test_storing_a_scalar_fills_the_destination(rng: np.random.Generator) -> None:
    value = float(rng.integers(1, 1000))
    for dtype in (np.float32, np.int32):
        got = nki.simulate(store_scalar)(np.zeros((128, 96), dtype), value if dtype == np.float32 else int(value))
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, np.full((128, 96), value, dtype))
