"""An on-chip `.ap()` view past the end of its tile is refused when an instruction uses it, not when it is made.

nkilib's output_projection_tkg builds `w_sbuf.ap(..., offset=head * h1 * h2 + h_2_idx)` for every h_2_idx of a
loop and issues the matmul only `if h_2_idx < h_2_size`; NKI checks accesses, so the unused view is harmless.
Checked against numpy on fresh random data; the used out-of-range view is a BoundsError naming its line.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import BoundsError


@nki.jit
def strided_columns(a, use_the_last_view):
    """Column j of every group of `step` columns, for j < step; the view for j == step runs off the tile."""
    p, f = a.shape
    step = 8
    w = nl.ndarray((p, f), dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=w, src=a)
    out = nl.ndarray((step, p, f // step), dtype=a.dtype, buffer=nl.shared_hbm)
    for j in range(step + 1):
        view = w.ap(pattern=[[f, p], [step, f // step]], offset=j)
        if j < step or use_the_last_view:
            t = nl.ndarray((p, f // step), dtype=a.dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=t, src=view)  # ERR
            nisa.dma_copy(dst=out[j], src=t)
    return out


def test_an_unused_view_past_the_end_is_harmless(rng: np.random.Generator) -> None:
    p, groups = int(rng.integers(1, 129)), int(rng.integers(1, 17))
    a = rng.standard_normal((p, 8 * groups)).astype(np.float32)
    got = nki.simulate(strided_columns, target="trn2")(a, False)
    np.testing.assert_array_equal(got, np.stack([a[:, j::8] for j in range(8)]))


def test_using_it_is_a_bounds_error_at_that_line() -> None:
    with pytest.raises(BoundsError) as info:
        nki.simulate(strided_columns, target="trn2")(np.zeros((16, 32), np.float32), True)
    fn = inspect.unwrap(strided_columns.fn)
    lines, start = inspect.getsourcelines(fn)
    line = start + next(i for i, text in enumerate(lines) if text.rstrip().endswith("# ERR"))
    assert info.value.location == f"{fn.__code__.co_filename}:{line}", str(info.value)
    assert info.value.rule == "bounds" and "reaches 0..16 in dim 0" in str(info.value)
