"""`NkiTensor.base_tensor`: the whole tensor a view was taken from (its allocation, in the allocation's dtype and
shape; the tensor itself when it is whole). Not in the NKI API reference, but nki-library 2026-04-13 reads it on
kernel arguments (moe_tkg's MX weight loads: `base = weight.base_tensor`, then `TensorView(base).select(0, e)`).
Values checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import BoundsError


@nki.jit
def from_the_base(x, e):
    assert x.base_tensor is x  # a kernel argument is whole: its own base
    view = x[0, 1:3]  # a view of expert 0's rows 1..2
    base = view.base_tensor
    assert tuple(base.shape) == tuple(x.shape) and base.dtype == x.dtype
    assert x.reinterpret_cast(nl.int32).base_tensor.dtype == x.dtype  # reinterpreted: the allocation's dtype
    _, p, f = x.shape
    sb = nl.ndarray((p, f), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=sb, src=base[e])  # rows outside the view, through its base
    out = nl.ndarray((p, f), dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=sb)
    return out


def test_the_base_of_a_view_is_the_whole_tensor(rng: np.random.Generator) -> None:
    n_e, p, f = int(rng.integers(2, 6)), int(rng.integers(3, 129)), int(rng.integers(1, 64))
    x = rng.standard_normal((n_e, p, f)).astype(np.float32)
    e = int(rng.integers(1, n_e))
    np.testing.assert_array_equal(nki.simulate(from_the_base)(x, e), x[e])


@nki.jit
def past_the_base(x):
    base = x[0:1].base_tensor
    sb = nl.ndarray(x.shape[1:], dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=sb, src=base[x.shape[0]])  # one past the whole tensor
    return sb


def test_the_base_is_bounds_checked_as_the_whole_tensor() -> None:
    with pytest.raises(BoundsError) as info:
        nki.profile(past_the_base, mode="timing")(np.zeros((2, 4, 8), np.float32))
    assert "test_base_tensor_e2.py" in str(info.value)
