"""Random tiled matmul kernels: out[M, N] = a_t[K, M].T @ b[K, N], K in 128-row tiles accumulated in PSUM.

Two styles, as kernels in the wild are written: legacy (`nl.zeros(..., buffer=nl.psum)`, `res +=
nl.matmul(..., transpose_x=True)`, masked loads and stores for a ragged M) and current (`nisa.nc_matmul`
with accumulate=None into a PSUM tile that is either allocated per output tile or hoisted out of the loop
and reused). The N dim is split over an SPMD grid (`nl.program_id(0)`). Shapes are random, M need not be a
multiple of the M tile.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np


@dataclass
class MatmulProgram:
    k_tiles: int
    m: int
    m_tile: int
    n_tile: int
    grid: int
    legacy: bool
    hoisted_psum: bool  # current style: one PSUM tile for every output tile

    @property
    def k(self) -> int:
        return 128 * self.k_tiles

    @property
    def n(self) -> int:
        return self.n_tile * self.grid

    @property
    def m_tiles(self) -> int:
        return -(-self.m // self.m_tile)


def random_matmul_program(rng: random.Random) -> MatmulProgram:
    legacy = rng.random() < 0.5
    m_tile = rng.choice([32, 64, 128])
    m = rng.randint(1, 3 * m_tile) if legacy else m_tile * rng.randint(1, 3)  # ragged M needs masks
    return MatmulProgram(
        k_tiles=rng.randint(1, 3),
        m=m,
        m_tile=m_tile,
        n_tile=rng.choice([16, 64, 128, 512]),
        grid=rng.randint(1, 3),
        legacy=legacy,
        hoisted_psum=rng.random() < 0.5,
    )


def _legacy_body(p: MatmulProgram) -> list[str]:
    return [
        "n0 = nl.program_id(0) * NT",
        "i_k = nl.arange(128)[:, None]",
        "i_m = nl.arange(MT)[None, :]",
        "i_n = nl.arange(NT)[None, :]",
        "i_r = nl.arange(MT)[:, None]",
        f"for m in nl.affine_range({p.m_tiles}):",
        "    res = nl.zeros((MT, NT), nl.float32, buffer=nl.psum)",
        f"    for k in nl.affine_range({p.k_tiles}):",
        "        st = nl.zeros((128, MT), nl.float32)",
        "        st[i_k, i_m] = nl.load(a_t[k * 128 + i_k, m * MT + i_m], mask=(m * MT + i_m < M))",
        "        mv = nl.load(b[k * 128 + i_k, n0 + i_n])",
        "        res += nl.matmul(st, mv, transpose_x=True)",
        "    nl.store(out[m * MT + i_r, n0 + i_n], value=res, mask=(m * MT + i_r < M))",
    ]


def _current_body(p: MatmulProgram) -> list[str]:
    psum = "ps = nl.ndarray((MT, NT), nl.float32, buffer=nl.psum)"
    lines = ["n0 = nl.program_id(0) * NT"]
    lines += [psum] if p.hoisted_psum else []
    lines += [f"for m in nl.affine_range({p.m_tiles}):"]
    lines += [] if p.hoisted_psum else ["    " + psum]
    lines += [
        f"    for k in nl.affine_range({p.k_tiles}):",
        "        st = nl.ndarray((128, MT), nl.float32, buffer=nl.sbuf)",
        "        nisa.dma_copy(dst=st, src=a_t[k * 128 : (k + 1) * 128, m * MT : (m + 1) * MT])",
        "        mv = nl.ndarray((128, NT), nl.float32, buffer=nl.sbuf)",
        "        nisa.dma_copy(dst=mv, src=b[k * 128 : (k + 1) * 128, n0 : n0 + NT])",
        "        nisa.nc_matmul(ps, st, mv)",
        "    sb = nl.ndarray((MT, NT), nl.float32, buffer=nl.sbuf)",
        "    nisa.tensor_copy(dst=sb, src=ps)",
        "    nisa.dma_copy(dst=out[m * MT : (m + 1) * MT, n0 : n0 + NT], src=sb)",
    ]
    return lines


def render_matmul(p: MatmulProgram) -> str:
    body = [
        "M = a_t.shape[1]",
        f"MT, NT = {p.m_tile}, {p.n_tile}",
        f"out = nl.ndarray((M, {p.n}), nl.float32, buffer=nl.shared_hbm)",
        *(_legacy_body(p) if p.legacy else _current_body(p)),
        "return out",
    ]
    header = "import trnsim.nki as nki\nimport trnsim.nki.isa as nisa\nimport trnsim.nki.language as nl\n\n\n"
    return header + "@nki.jit\ndef kernel(a_t, b):\n" + "".join(f"    {ln}\n" for ln in body)


def matmul_inputs(p: MatmulProgram, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return (
        rng.standard_normal((p.k, p.m)).astype(np.float32),
        rng.standard_normal((p.k, p.n)).astype(np.float32),
    )


def matmul_close(got: np.ndarray, a_t: np.ndarray, b: np.ndarray) -> bool:
    want = a_t.astype(np.float64).T @ b.astype(np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(a_t.shape[0])))
