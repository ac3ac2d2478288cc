"""`nl.range` (used by nkilib's loops) is Python's range, as NKI's loop helpers are; checked against numpy."""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.language as nl


@nki.jit
def row_blocks_doubled(x, block):
    f = x.shape[1]
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    for b in nl.range(f // block):
        t = nl.load(x[:, nl.ds(b * block, block)])
        nl.store(out[:, nl.ds(b * block, block)], nl.multiply(t, 2.0))
    return out


def test_nl_range_drives_a_loop(rng: np.random.Generator) -> None:
    block = int(rng.integers(1, 64))
    x = rng.standard_normal((int(rng.integers(1, 129)), block * int(rng.integers(1, 6)))).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate(row_blocks_doubled)(x, block), x * 2.0)
    assert list(nl.range(2, 9, 3)) == [2, 5, 8]
