"""A numpy bool array is a valid predicate (NKI's bool_ is one byte, as uint8): the NKI docs' examples pass
np.less_equal(a, b) straight to tensor_copy_predicated and select_reduce. Checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import DtypeError


@nki.jit
def copy_where(pred_tensor, on_true_tensor, on_false_tensor):
    out = nl.ndarray(on_true_tensor.shape, dtype=on_true_tensor.dtype, buffer=nl.shared_hbm)
    pred, src = nl.load(pred_tensor), nl.load(on_true_tensor)
    dst = nl.load(on_false_tensor)
    nisa.tensor_copy_predicated(dst=dst, src=src, predicate=pred)
    nl.store(out, dst)
    return out


@nki.jit
def select_where(pred_tensor, on_true_tensor):
    out = nl.ndarray(on_true_tensor.shape, dtype=nl.float32, buffer=nl.shared_hbm)
    dst = nl.ndarray(on_true_tensor.shape, dtype=nl.float32, buffer=nl.sbuf)
    nisa.select_reduce(dst=dst, predicate=nl.load(pred_tensor), on_true=nl.load(on_true_tensor), on_false=-5.0)
    nl.store(out, dst)
    return out


def test_bool_predicate_in_tensor_copy_predicated(rng: np.random.Generator) -> None:
    a, b = rng.random((128, 64), dtype=np.float32), rng.random((128, 64), dtype=np.float32)
    pred = np.less_equal(a, 0.5)
    np.testing.assert_array_equal(nki.simulate(copy_where)(pred, a, b), np.where(pred, a, b))


def test_bool_predicate_in_select_reduce(rng: np.random.Generator) -> None:
    a = rng.standard_normal((32, 48)).astype(np.float32)
    pred = a > 0
    np.testing.assert_array_equal(nki.simulate(select_where)(pred, a), np.where(pred, a, np.float32(-5.0)))


def test_a_float_predicate_is_still_rejected(rng: np.random.Generator) -> None:
    a = rng.random((16, 8), dtype=np.float32)
    with pytest.raises(DtypeError, match="predicate must be"):
        nki.simulate(copy_where)(a, a, a)
