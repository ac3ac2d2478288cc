"""`nl.ndarray(..., address=...)`: a tile the kernel placed itself takes over the bytes of the tile it placed
earlier at the same address (nkilib allocates one PSUM bank per loop iteration this way, while the previous
iteration's list of tiles is still referenced). Checked against numpy on fresh random data."""

from __future__ import annotations

import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl

BANK_BYTES = 2048  # one PSUM bank per partition (nl.tile_size.psum_fmax fp32)


@nki.jit
def banks_per_iteration(a, b):
    k, m = a.shape
    n_blocks = b.shape[0]
    out = nl.ndarray((n_blocks, m, 512), dtype=nl.float32, buffer=nl.shared_hbm)
    sa = nl.ndarray((k, m), dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=sa, src=a)
    tiles = [  # placed and written, never read: still referenced, but over once the kernel places anew
        nl.ndarray((m, 512), dtype=nl.float32, buffer=nl.psum, address=(0, bank * BANK_BYTES)) for bank in range(8)
    ]
    for t in tiles:
        nisa.memset(dst=t, value=0.0)
    for it in range(n_blocks // 8):
        tiles = [  # 8 banks: all of PSUM, while the last iteration's 8 are still in `tiles`
            nl.ndarray((m, 512), dtype=nl.float32, buffer=nl.psum, address=(0, bank * BANK_BYTES)) for bank in range(8)
        ]
        for bank, acc in enumerate(tiles):
            sb = nl.ndarray((k, 512), dtype=b.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=sb, src=b[it * 8 + bank])
            nisa.nc_matmul(acc, sa, sb)
            res = nl.ndarray((m, 512), dtype=nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(dst=res, src=acc)
            nisa.dma_copy(dst=out[it * 8 + bank], src=res)
    return out


def test_a_tile_placed_at_an_address_takes_over_the_earlier_ones_bytes(rng: np.random.Generator) -> None:
    k, m, iterations = int(rng.integers(1, 129)), int(rng.integers(1, 129)), int(rng.integers(2, 4))
    a = rng.standard_normal((k, m)).astype(np.float32)
    b = rng.standard_normal((8 * iterations, k, 512)).astype(np.float32)
    got = nki.simulate(banks_per_iteration, target="trn2")(a, b)
    np.testing.assert_allclose(got, np.einsum("km,bkn->bmn", a, b), rtol=1e-4, atol=1e-4)
