"""`.ap(scalar_offset=<VirtualRegister>)`: a register loaded from data picks the row a DMA reads (nkilib's dynamic
access patterns), against numpy on fresh random data."""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl


@nki.jit
def copy_row_chosen_by_register(a, row):
    reg = nisa.register_alloc()
    nisa.register_load(reg, nl.load(row))
    dst = nl.ndarray((1, a.shape[1]), dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=dst, src=a.ap([[a.shape[1], 1], [1, a.shape[1]]], scalar_offset=reg, indirect_dim=0))
    out = nl.ndarray((1, a.shape[1]), dtype=a.dtype, buffer=nl.shared_hbm)
    nl.store(out, dst)
    return out


def test_a_register_scalar_offset_selects_the_row(rng: np.random.Generator) -> None:
    a = rng.standard_normal((24, 40)).astype(np.float32)
    r = int(rng.integers(0, 24))
    got = nki.simulate(copy_row_chosen_by_register)(a, np.array([[r]], dtype=np.int32))
    np.testing.assert_array_equal(got, a[r : r + 1])
