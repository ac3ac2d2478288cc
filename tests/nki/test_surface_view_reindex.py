"""A view made of index arrays (an nl.mgrid index expression or an `.ap()` access pattern) can be indexed
again, as NKI's views can: slices, ints and nl.ds pick positions of the view. Checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import BoundsError


@nki.jit
def reindexed(x, rows, cols):
    p, f = x.shape
    t = nl.load(x)
    i_p, i_f = nl.mgrid[0:p, 0:f]
    flipped = t[i_p, f - 1 - i_f]  # an index-expression view: each row reversed
    strided = t.ap(pattern=[[f, p], [2, f // 2]], offset=1)  # x[:, 1::2]
    outs = []
    for view in (
        flipped[rows[0] : rows[1], cols[0] : cols[1]],
        strided[rows[0] : rows[1], nl.ds(cols[0], 2)],
        strided[1],
    ):
        res = nl.ndarray(view.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=res, src=view)
        o = nl.ndarray(view.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=o, src=res)
        outs.append(o)
    return tuple(outs)


def test_index_expression_and_ap_views_index_again(rng: np.random.Generator) -> None:
    p, f = int(rng.integers(4, 129)), 2 * int(rng.integers(4, 100))
    x = rng.standard_normal((p, f)).astype(np.float32)
    r0 = int(rng.integers(0, p - 2))
    rows = (r0, int(rng.integers(r0 + 1, p)))
    c0 = int(rng.integers(0, f // 2 - 2))
    cols = (c0, int(rng.integers(c0 + 1, f // 2)))
    flipped, strided, row = nki.simulate(reindexed)(x, rows, cols)
    np.testing.assert_array_equal(flipped, x[:, ::-1][rows[0] : rows[1], cols[0] : cols[1]])
    np.testing.assert_array_equal(strided, x[:, 1::2][rows[0] : rows[1], cols[0] : cols[0] + 2])
    np.testing.assert_array_equal(row, x[1:2, 1::2].reshape(-1))


@nki.jit
def out_of_bounds(x):
    p, f = x.shape
    t = nl.load(x)
    view = t.ap(pattern=[[f, p], [1, f]], offset=0)
    return view[0 : p + 1]


def test_indexing_past_the_view_is_a_bounds_error() -> None:
    with pytest.raises(BoundsError, match="out of bounds"):
        nki.simulate(out_of_bounds)(np.zeros((8, 16), dtype=np.float32))
