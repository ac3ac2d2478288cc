"""NkiTensor.slice / select (static and dynamic) / vector_select (NKI 0.5 view primitives) against numpy on
random data, and their rules as clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import BoundsError, UsageError


@nki.jit
def copy_view(a, which, args):
    if which == "slice-hbm":
        src = a.slice(*args)
    elif which == "slice-sbuf":
        t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=a)
        src = t.slice(*args)
    elif which == "select-static":
        src = a.select(*args)
    else:  # a dynamic select: the index lives in a (1, 1) SBUF tile
        idx = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.memset(idx, value=args[1])
        src = a.select(args[0], idx)
    staged = nl.ndarray(src.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=staged, src=src)
    out = nl.ndarray(src.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=staged)
    return out


def test_slice_on_hbm_and_sbuf(rng: np.random.Generator) -> None:
    a = rng.standard_normal((int(rng.integers(1, 129)), int(rng.integers(2, 300)))).astype(np.float32)
    start = int(rng.integers(0, a.shape[1] - 1))
    end, step = int(rng.integers(start + 1, a.shape[1] + 1)), int(rng.integers(1, 4))
    want = a[:, start:end:step]
    np.testing.assert_array_equal(nki.simulate(copy_view)(a, "slice-hbm", (1, start, end, step)), want)
    np.testing.assert_array_equal(nki.simulate(copy_view)(a, "slice-sbuf", (1, start, end, step)), want)


def test_static_and_dynamic_select(rng: np.random.Generator) -> None:
    a = rng.standard_normal((int(rng.integers(2, 9)), int(rng.integers(1, 129)), int(rng.integers(1, 64))))
    a = a.astype(np.float32)
    j = int(rng.integers(0, a.shape[1]))
    np.testing.assert_array_equal(nki.simulate(copy_view)(a, "select-static", (1, j)), a[:, j])
    i = int(rng.integers(0, a.shape[0]))
    np.testing.assert_array_equal(nki.simulate(copy_view)(a, "select-dynamic", (0, i)), a[i])


@nki.jit
def gather_rows(a, offsets):
    idx = nl.ndarray(offsets.shape, dtype=offsets.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=idx, src=offsets)
    src = a.vector_select(0, idx)
    staged = nl.ndarray(src.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=staged, src=src)
    out = nl.ndarray(src.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=staged)
    return out


def test_vector_select_gathers_one_row_per_partition(rng: np.random.Generator) -> None:
    a = rng.standard_normal((int(rng.integers(2, 300)), int(rng.integers(1, 200)))).astype(np.float32)
    offsets = rng.integers(0, a.shape[0], size=(int(rng.integers(1, 129)), 1)).astype(np.int32)
    np.testing.assert_array_equal(nki.simulate(gather_rows)(a, offsets), a[offsets[:, 0]])


@nki.jit
def bad(a, which):
    t = nl.ndarray((4, 8), dtype=a.dtype, buffer=nl.sbuf)
    if which == "select-partition":
        t.select(0, 1)
    elif which == "vector-dim":
        idx = nl.ndarray((4, 1), dtype=nl.int32, buffer=nl.sbuf)
        a.vector_select(1, idx)
    elif which == "slice-range":
        a.slice(1, 4, 99)
    elif which == "dim-range":
        a.slice(5, 0, 1)


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("select-partition", UsageError, "partition dim"),
        ("vector-dim", UsageError, "dim=0"),
        ("slice-range", BoundsError, "end <= 8"),
        ("dim-range", UsageError, "out of range"),
    ],
)
def test_view_primitive_errors(which: str, error: type, words: str) -> None:
    with pytest.raises(error, match=r"test_tensor_select_b\.py") as info:
        nki.simulate(bad)(np.zeros((16, 8), np.float32), which)
    assert words in str(info.value)
