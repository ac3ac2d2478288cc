"""nc_matmul_mx with accumulate=None over several contraction tiles into one PSUM tile: the first call
overwrites, later ones add (NKI docs, nc_matmul "Accumulation mode", which nc_matmul_mx shares), against numpy
on random MX data. (A second nc_matmul_mx into the same PSUM location used to overwrite it.)"""

from __future__ import annotations

import ml_dtypes
import numpy as np

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim import dtypes


@nki.jit
def mx_matmul_k_tiles(st, mv, st_scale, mv_scale):
    k_tiles, m, n = st.shape[0], st.shape[2], mv.shape[2]
    acc = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.psum)
    for k in nl.affine_range(k_tiles):
        s = nl.load(st[k]).view(nl.float8_e4m3fn_x4)
        v = nl.load(mv[k]).view(nl.float8_e4m3fn_x4)
        nisa.nc_matmul_mx(acc, s, v, nl.load(st_scale[k]), nl.load(mv_scale[k]))  # accumulate=None
    res = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.sbuf)
    nisa.tensor_copy(dst=res, src=acc)
    out = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.shared_hbm)
    nl.store(out, res)
    return out


def random_tiles(rng: np.random.Generator, k_tiles: int, p: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw packed bits [k_tiles, p, f], uint8 scales [k_tiles, p // 8, f], dequantized values [k_tiles, p, f, 4]."""
    values = rng.uniform(-4, 4, size=(k_tiles, p, f, 4)).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    biased = rng.integers(122, 132, size=(k_tiles, p // 8, f)).astype(np.uint8)
    packed = np.stack([dtypes.pack_x4(v.reshape(p, f * 4), dtypes.float8_e4m3fn_x4) for v in values])
    factor = np.repeat(2.0 ** (biased.astype(np.float64) - 127), 8, axis=1)[..., None]
    return packed.view(np.uint32), biased, values * factor


def test_nc_matmul_mx_accumulates_over_contraction_tiles(rng: np.random.Generator) -> None:
    k_tiles, p = int(rng.integers(2, 5)), 32 * int(rng.integers(1, 5))
    m, n = 2 * int(rng.integers(1, 65)), int(rng.integers(1, 513))  # stationary free: even, <= 128
    st, st_scale, a = random_tiles(rng, k_tiles, p, m)
    mv, mv_scale, b = random_tiles(rng, k_tiles, p, n)
    # each tile contracts over (partition, packed value): a [p*4, m] matrix times a [p*4, n] one, summed over tiles
    want = sum(
        a[k].transpose(0, 2, 1).reshape(p * 4, m).T @ b[k].transpose(0, 2, 1).reshape(p * 4, n) for k in range(k_tiles)
    )
    got = nki.simulate(mx_matmul_k_tiles, target="trn3")(st, mv, st_scale, mv_scale)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
