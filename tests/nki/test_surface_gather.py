"""nisa.nc_n_gather against numpy's take_along_axis on the flattened free elements (bit-exact for any dtype, an
out-of-range index a BoundsError) and nisa.sequence_bounds against the NKI docs' own example code; the rules of
both as clear errors in functional and timing runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import BoundsError, DtypeError, ShapeMismatchError, TileShapeError, UsageError


@nki.jit
def gather(x, idx):
    t, i = nl.load(x), nl.load(idx)
    y = nl.ndarray(idx.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.nc_n_gather(y, t, i)
    out = nl.ndarray(idx.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint16])
def test_nc_n_gather_matches_numpy(rng: np.random.Generator, dtype: Any) -> None:
    p, a, b, n = (
        int(rng.integers(1, 129)),
        int(rng.integers(1, 20)),
        int(rng.integers(1, 30)),
        int(rng.integers(1, 700)),
    )
    x = rng.integers(0, 60000, size=(p, a, b)).astype(dtype)
    idx = rng.integers(0, a * b, size=(p, n)).astype(np.uint32)
    got = nki.simulate(gather)(x, idx)
    np.testing.assert_array_equal(got, np.take_along_axis(x.reshape(p, -1), idx.astype(np.int64), axis=1))


def test_out_of_range_index_is_a_bounds_error() -> None:
    x = np.zeros((4, 10), np.float32)
    idx = np.full((4, 3), 10, np.uint32)
    with pytest.raises(BoundsError, match=r"outside \[0, 10\)"):
        nki.simulate(gather)(x, idx)


@nki.jit
def bad(which):
    t = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.sbuf)
    i = nl.ndarray((32, 8), dtype=nl.uint32, buffer=nl.sbuf)
    nisa.memset(dst=t, value=1.0)
    nisa.memset(dst=i, value=0)
    y = nl.ndarray((32, 8), dtype=nl.float32, buffer=nl.sbuf)
    if which == "idx-dtype":
        nisa.nc_n_gather(y, t, nl.ndarray((32, 8), dtype=nl.int32, buffer=nl.sbuf))
    elif which == "dst-dtype":
        nisa.nc_n_gather(nl.ndarray((32, 8), dtype=nl.bfloat16, buffer=nl.sbuf), t, i)
    elif which == "dst-shape":
        nisa.nc_n_gather(nl.ndarray((32, 9), dtype=nl.float32, buffer=nl.sbuf), t, i)
    elif which == "psum":
        tp = nl.ndarray((32, 64), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_n_gather(y, tp, i)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("idx-dtype", DtypeError, "indices must be uint32"),
        ("dst-dtype", DtypeError, "must have data's dtype"),
        ("dst-shape", ShapeMismatchError, "one element per index"),
        ("psum", UsageError, "PSUM"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_nc_n_gather_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad, target="trn2", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_gather.py" in str(info.value)


@nki.jit
def bounds(ids):
    t = nl.load(ids)
    y = nl.ndarray((1, 2, ids.shape[1]), dtype=ids.dtype, buffer=nl.sbuf)
    nisa.sequence_bounds(y, t)
    out = nl.ndarray((1, 2, ids.shape[1]), dtype=ids.dtype, buffer=nl.shared_hbm)
    nl.store(out, y)
    return out


def documented_bounds(sequence: np.ndarray) -> np.ndarray:
    """The NKI docs' example (test_nki_isa_sequence_bounds.py, compute_sequence_bounds), as written there."""
    n = len(sequence)
    lo, hi = np.zeros(n), np.zeros(n)
    lo[0] = 0 if sequence[0] != 0 else n
    for i in range(1, n):
        lo[i] = n if sequence[i] == 0 else lo[i - 1] if sequence[i] == sequence[i - 1] else i
    hi[-1] = n if sequence[-1] != 0 else -1
    for i in range(n - 2, -1, -1):
        hi[i] = -1 if sequence[i] == 0 else hi[i + 1] if sequence[i] == sequence[i + 1] else i + 1
    return np.vstack((lo, hi))


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_sequence_bounds_matches_the_documented_example(rng: np.random.Generator, dtype: Any) -> None:
    n = int(rng.integers(1, 600))
    ids = np.sort(rng.integers(0, max(2, n // 4), size=n)).astype(dtype)
    ids[rng.integers(0, n, size=n // 10)] = 0  # padding scattered between the segments
    got = nki.simulate(bounds)(ids.reshape(1, n))
    np.testing.assert_array_equal(got.reshape(2, n), documented_bounds(ids))


def test_sequence_bounds_docs_example() -> None:
    ids = np.array([[0, 1, 1, 2, 2, 2, 0, 3, 3]], np.int32)
    got = nki.simulate(bounds)(ids)
    np.testing.assert_array_equal(got[0], [[9, 1, 1, 3, 3, 3, 9, 7, 7], [-1, 3, 3, 6, 6, 6, -1, 9, 9]])


@nki.jit
def bad_bounds(which):
    ids = nl.ndarray((1, 16), dtype=nl.int32, buffer=nl.sbuf)
    nisa.memset(dst=ids, value=1)
    if which == "dtype":
        nisa.sequence_bounds(nl.ndarray((1, 2, 16), dtype=nl.bfloat16, buffer=nl.sbuf), ids)
    elif which == "partitions":
        two = nl.ndarray((2, 16), dtype=nl.int32, buffer=nl.sbuf)
        nisa.sequence_bounds(nl.ndarray((2, 2, 16), dtype=nl.int32, buffer=nl.sbuf), two)
    elif which == "dst-shape":
        nisa.sequence_bounds(nl.ndarray((1, 16), dtype=nl.int32, buffer=nl.sbuf), ids)
    out = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.shared_hbm)
    return out


@pytest.mark.parametrize(
    ("which", "error", "words"),
    [
        ("dtype", DtypeError, "float32 or int32"),
        ("partitions", TileShapeError, "1 partition"),
        ("dst-shape", ShapeMismatchError, "dst must be [1, 2, 16]"),
    ],
)
@pytest.mark.parametrize("mode", ["functional", "timing"])
def test_sequence_bounds_rules_are_clear_errors_in_both_modes(which: str, error: Any, words: str, mode: str) -> None:
    with pytest.raises(error) as info:
        nki.profile(bad_bounds, target="trn2", mode=mode)(which)  # type: ignore[arg-type]
    assert words in str(info.value) and "test_surface_gather.py" in str(info.value)
