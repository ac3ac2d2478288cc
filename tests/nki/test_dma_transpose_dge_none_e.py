"""nisa.dma_transpose's dge_mode: the 2-byte limit belongs to the DGE transposes (hwdge, swdge); `none` ("Not
using DGE", nisa.dge_mode docs) and `unknown` move any dtype. nki-library passes the modes as ints
(mlp_tkg_gate_up_projection: `dge_mode=3` on a float32 dequant scale). Values against numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UsageError


@nki.jit
def transposed(x, dge):
    out = nl.ndarray((x.shape[1], x.shape[0]), dtype=x.dtype, buffer=nl.shared_hbm)
    sb = nl.ndarray((x.shape[1], x.shape[0]), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_transpose(dst=sb, src=x, dge_mode=dge)
    nisa.dma_copy(dst=out, src=sb)
    return out


@pytest.mark.parametrize("dge", [nisa.dge_mode.none, 3, nisa.dge_mode.unknown, 0])
def test_a_four_byte_transpose_without_dge_matches_numpy(rng: np.random.Generator, dge: Any) -> None:
    x = rng.standard_normal((int(rng.integers(1, 129)), int(rng.integers(1, 129)))).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate(transposed, target="trn2")(x, dge), x.T)


@pytest.mark.parametrize(("dge", "words"), [(2, "2-byte"), (nisa.dge_mode.swdge, "2-byte"), (7, "dge_mode must be")])
def test_dge_transposes_keep_their_limits_and_unknown_modes_are_refused(dge: Any, words: str) -> None:
    x = np.zeros((16, 8), np.float32)
    with pytest.raises(UsageError, match=words) as info:
        nki.profile(transposed, target="trn2", mode="timing")(x, dge)
    assert "test_dma_transpose_dge_none_e.py" in str(info.value)
