"""`neuronxcc.nki.isa` instructions added after NKI Beta 1, called as the NKI docs' own examples call them
(dma_transpose, nc_find_index8, nc_match_replace8, sequence_bounds return a new tile), against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.language as nl
import trnsim.nki.legacy_isa as lisa
from trnsim.errors import UsageError


@nki.jit
def legacy_dma_transpose(a_tensor):
    a = nl.load(a_tensor)
    b = lisa.dma_transpose(a)
    out = nl.ndarray(b.shape, dtype=b.dtype, buffer=nl.shared_hbm)
    nl.store(out, b)
    return out


def test_legacy_dma_transpose_returns_the_transposed_tile(rng: np.random.Generator) -> None:
    a = rng.standard_normal((64, 96)).astype(np.float32)
    np.testing.assert_array_equal(nki.simulate(legacy_dma_transpose)(a), a.T)


@nki.jit
def legacy_find_and_replace(a_tensor):
    data = nl.load(a_tensor)
    vals = lisa.max8(src=data)
    idx = lisa.nc_find_index8(data=data, vals=vals)
    replaced = lisa.nc_match_replace8(data=data, vals=vals, imm=-1.0)
    idx_out = nl.ndarray(idx.shape, dtype=idx.dtype, buffer=nl.shared_hbm)
    rep_out = nl.ndarray(replaced.shape, dtype=replaced.dtype, buffer=nl.shared_hbm)
    nl.store(idx_out, idx)
    nl.store(rep_out, replaced)
    return idx_out, rep_out


def test_legacy_find_index8_and_match_replace8(rng: np.random.Generator) -> None:
    a = rng.permuted(np.tile(np.arange(64, dtype=np.float32), (16, 1)), axis=1)  # distinct values per row
    idx, replaced = nki.simulate(legacy_find_and_replace)(a)
    expected_idx = np.argsort(-a, axis=1, kind="stable")[:, :8]
    assert idx.shape == (16, 8) and idx.dtype == np.uint32
    np.testing.assert_array_equal(idx, expected_idx)
    expected = a.copy()
    np.put_along_axis(expected, expected_idx, -1.0, axis=1)
    np.testing.assert_array_equal(replaced, expected)


@nki.jit
def legacy_sequence_bounds(ids_tensor):
    ids = nl.load(ids_tensor)
    bounds = lisa.sequence_bounds(segment_ids=ids)
    out = nl.ndarray(bounds.shape, dtype=bounds.dtype, buffer=nl.shared_hbm)
    nl.store(out, bounds)
    return out


def _sequence_bounds_reference(ids: np.ndarray) -> np.ndarray:
    """Each element's segment [start, end) within its row (segments are contiguous); padding (id 0) gets
    [n, -1] (the NKI docs' rule)."""
    p, n = ids.shape
    out = np.empty((p, 2, n), dtype=ids.dtype)
    for r in range(p):
        for c in range(n):
            same = np.flatnonzero(ids[r] == ids[r, c])
            out[r, :, c] = (n, -1) if ids[r, c] == 0 else (same.min(), same.max() + 1)
    return out


def test_legacy_sequence_bounds_returns_a_p_2_n_tile(rng: np.random.Generator) -> None:
    ids = np.sort(rng.integers(0, 4, size=(1, 24)), axis=1).astype(np.int32)  # contiguous segments, padding 0
    np.testing.assert_array_equal(nki.simulate(legacy_sequence_bounds)(ids), _sequence_bounds_reference(ids))


@nki.jit
def legacy_bad_transpose(a_tensor):
    a = nl.load(a_tensor)
    return lisa.dma_transpose(a, axes=(0, 0))


def test_legacy_dma_transpose_rejects_axes_that_do_not_permute(rng: np.random.Generator) -> None:
    with pytest.raises(UsageError, match="do not permute"):
        nki.simulate(legacy_bad_transpose)(rng.standard_normal((8, 8)).astype(np.float32))
