"""NkiTensor.np_index(clip=True) against np.clip on fresh random index arrays, in range and past either end
(np_index clips only when some index is out of range; the selected values must be the same either way)."""

from __future__ import annotations

import numpy as np

from trnsim.nki.tensor import NkiTensor
from trnsim.sim.memory import Allocation, MemoryKind


def test_clip_matches_numpy_clip() -> None:
    rng = np.random.default_rng()
    alloc = Allocation(MemoryKind.SBUF, (16, 40), np.dtype(np.float32), "t", 0, 0, 160, functional=True)
    storage = alloc.storage
    assert storage is not None
    storage[...] = rng.standard_normal((16, 40)).astype(np.float32)
    alloc.mark_all_written()
    for low, high in [(0, 40), (-5, 40), (0, 47), (-3, 50)]:
        rows = rng.integers(0, 16, size=(16, 1))
        cols = rng.integers(low, high, size=(16, 12))
        view = NkiTensor(alloc, (rows, cols))
        got = view.np_index(clip=True)
        ref = (np.clip(rows, 0, 15), np.clip(cols, 0, 39))
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(np.broadcast_to(g, (16, 12)), np.broadcast_to(r, (16, 12)))
        np.testing.assert_array_equal(view.read(), storage[ref])
