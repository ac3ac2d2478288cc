"""Top-k the way nki-library's rotational topk does it: max8, then nc_match_replace8 writing its result over
its own input (dst=data) and the matched positions into dst_idx. The positions are those of the data as
read, before the replacement; against numpy's sort on fresh random data.
"""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl


@nki.jit
def topk_in_place(x, rounds):
    data = nl.load(x)
    vals = nl.ndarray((x.shape[0], 8 * rounds), dtype=x.dtype, buffer=nl.sbuf)
    idx = nl.ndarray((x.shape[0], 8 * rounds), dtype=nl.uint32, buffer=nl.sbuf)
    for r in nl.static_range(rounds):
        cols = nl.ds(r * 8, 8)
        nisa.max8(dst=vals[:, cols], src=data)
        nisa.nc_match_replace8(dst=data, data=data, vals=vals[:, cols], imm=float("-inf"), dst_idx=idx[:, cols])
    out_v = nl.ndarray(vals.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    out_i = nl.ndarray(idx.shape, dtype=nl.uint32, buffer=nl.shared_hbm)
    out_d = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out_v, vals)
    nl.store(out_i, idx)
    nl.store(out_d, data)
    return out_v, out_i, out_d


@pytest.mark.parametrize("dtype", [np.float32, nl.bfloat16])
def test_in_place_topk_positions_match_numpy(rng: np.random.Generator, dtype: object) -> None:
    # distinct values in every row, so the top-k positions are unique (bf16 holds integers exactly up to 256)
    p, n, rounds = int(rng.integers(1, 129)), int(rng.integers(32, 257 if dtype != np.float32 else 1000)), 3
    x = np.stack([rng.permutation(n) for _ in range(p)]).astype(np.float32) - n / 2
    x = x.astype(dtype)
    vals, idx, rest = nki.simulate(topk_in_place)(x, rounds)
    order = np.argsort(-x.astype(np.float32), axis=1, kind="stable")[:, : 8 * rounds]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(vals, np.take_along_axis(x, order, axis=1))
    want_rest = x.copy()
    np.put_along_axis(want_rest, order, -np.inf, axis=1)
    np.testing.assert_array_equal(rest, want_rest)
