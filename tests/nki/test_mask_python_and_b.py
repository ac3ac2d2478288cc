"""A mask written with Python's `and` (the NKI docs' nc_match_replace8 example does) is a clear error naming the
kernel line and `&`; the same mask written with `&` masks both dims, checked against numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
from trnsim.errors import UsageError


@nki.jit
def masked_square(a, n_rows, n_cols, use_and):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    ix, iy = nl.mgrid[0 : a.shape[0], 0 : a.shape[1]]
    t = nl.load(a)
    nl.store(out, t)
    if use_and:
        sq = nl.square(t, mask=(ix < n_rows and iy < n_cols))  # the line the error names
    else:
        sq = nl.square(t, mask=(ix < n_rows) & (iy < n_cols))
    nl.store(out[ix, iy], sq, mask=(ix < n_rows) & (iy < n_cols))
    return out


def test_ampersand_mask_applies_both_conditions(rng: np.random.Generator) -> None:
    a = rng.standard_normal((int(rng.integers(2, 129)), int(rng.integers(2, 300)))).astype(np.float32)
    r, c = int(rng.integers(1, a.shape[0])), int(rng.integers(1, a.shape[1]))
    want = a.copy()
    want[:r, :c] = a[:r, :c] ** 2
    np.testing.assert_allclose(nki.simulate(masked_square)(a, r, c, False), want, rtol=1e-6)


def test_python_and_in_a_mask_names_the_line_and_ampersand() -> None:
    a = np.ones((8, 8), np.float32)
    with pytest.raises(UsageError, match=r"test_mask_python_and_b\.py:\d+") as info:
        nki.simulate(masked_square)(a, 4, 4, True)
    assert "mask=(ix < n) & (iy < m)" in str(info.value)
    line = next(
        i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1) if "the line the error names" in text
    )
    assert info.value.location is not None and info.value.location.endswith(f":{line}")
