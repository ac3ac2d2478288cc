"""NKI's indexing rule for on-chip tiles: an int on the partition dim keeps it with size 1 (`sb[0, :]` is a
[1, F] tile), while HBM tensors and legacy block dims drop an int-indexed dim. Checked against numpy."""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl


@nki.jit
def one_row(x, row):
    p, f = x.shape
    sb = nl.ndarray((p, f + 1), dtype=x.dtype, buffer=nl.sbuf)
    nisa.memset(dst=sb, value=0.0)
    nisa.dma_copy(dst=sb[row, 0:f], src=x[row])  # HBM x[row] is [f]; sb[row, 0:f] is [1, f]
    assert tuple(sb[row, :].shape) == (1, f + 1) and tuple(x[row].shape) == (f,)
    out = nl.ndarray((1, f + 1), dtype=x.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out[0, :], src=sb[row, :])  # a source of f + 1 elements on one partition
    return out


def test_an_int_on_the_partition_dim_keeps_a_one_partition_tile(rng: np.random.Generator) -> None:
    p, f = int(rng.integers(2, 129)), int(rng.integers(129, 400))  # more columns than partitions
    x = rng.standard_normal((p, f)).astype(np.float32)
    row = int(rng.integers(0, p))
    got = nki.simulate(one_row)(x, row)
    np.testing.assert_array_equal(got, np.concatenate([x[row], [0.0]])[None, :].astype(np.float32))


@nki.jit
def legacy_blocks(x):
    nblocks, p, f = x.shape
    buf = nl.ndarray((nblocks, nl.par_dim(p), f), dtype=x.dtype, buffer=nl.sbuf)
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    for b in nl.affine_range(nblocks):
        buf[b] = nl.load(x[b])  # an int on a block dim drops it: buf[b] is a [p, f] tile
        nl.store(out[b], nl.multiply(buf[b], 2.0))
    return out


def test_legacy_block_dims_are_still_dropped(rng: np.random.Generator) -> None:
    x = rng.standard_normal((int(rng.integers(1, 5)), int(rng.integers(1, 129)), 64)).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate(legacy_blocks)(x), x * 2.0)
