"""NKI's language guide: on-chip tensors stay at least 2-D. An int on a free dim drops it "unless dropping would
make the result < 2-D, in which case the last free dim is kept at 1" (`sb[:, j]` of a [P, F] tile is [P, 1],
`t[:, a, b]` of a [P, M, N] tile is [P, 1], `t[:, a]` is [P, N]); HBM tensors drop an int-indexed dim as usual.
nki-library relies on it (attention_cte slices `range_sel_lbs[:p, grp]` again with `[:p, :1]`). Values checked
against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import BoundsError


@nki.jit
def columns(x, j, a, b):
    p, f = x.shape
    sb = nl.ndarray((p, f), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=sb, src=x)
    col = sb[:, j]  # [p, 1]: the free dim is kept at 1
    assert tuple(col.shape) == (p, 1) and tuple(col[:p, :1].shape) == (p, 1)
    assert tuple(sb[0, j].shape) == (1, 1) and tuple(x[:, j].shape) == (p,)  # HBM drops it
    t3 = sb.reshape((p, a, f // a))
    assert tuple(t3[:, 1].shape) == (p, f // a) and tuple(t3[:, 1, b].shape) == (p, 1)
    out = nl.ndarray((p, 3), dtype=x.dtype, buffer=nl.shared_hbm)
    got = nl.ndarray((p, 3), dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_copy(dst=got[:, 0:1], src=col[:p, :1])
    nisa.tensor_scalar(dst=got[:, 1:2], data=t3[:, 1, b], op0=nl.multiply, operand0=2.0)
    nisa.tensor_copy(dst=got[0:1, 2:3], src=sb[0, j])
    nisa.memset(dst=got[1:p, 2:3], value=0.0)
    nisa.dma_copy(dst=out, src=got)
    return out


def test_an_int_on_the_last_free_dim_keeps_it_at_size_one(rng: np.random.Generator) -> None:
    p, a = int(rng.integers(2, 129)), int(rng.integers(2, 5))
    f = a * int(rng.integers(2, 40))
    x = rng.standard_normal((p, f)).astype(np.float32)
    j, b = int(rng.integers(0, f)), int(rng.integers(0, f // a))
    got = nki.simulate(columns)(x, j, a, b)
    want = np.zeros((p, 3), np.float32)
    want[:, 0] = x[:, j]
    want[:, 1] = 2.0 * x.reshape(p, a, f // a)[:, 1, b]
    want[0, 2] = x[0, j]
    np.testing.assert_array_equal(got, want)


@nki.jit
def past_the_end(x):
    sb = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    col = sb[:, x.shape[1]]
    out = nl.ndarray((1, 1), dtype=x.dtype, buffer=nl.shared_hbm)
    return col, out


def test_an_int_past_the_free_dim_is_still_refused() -> None:
    with pytest.raises(BoundsError) as info:
        nki.profile(past_the_end, mode="timing")(np.zeros((4, 8), np.float32))
    assert "test_onchip_index_keeps_2d_e.py" in str(info.value)
