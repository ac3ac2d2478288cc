"""Allocation.note_written: the count of written elements against a plain numpy mask, on random overlapping writes.

The mask is dropped (fully_written) exactly when every element has been written, never earlier: a tile written
in overlapping pieces must not be counted twice, and one with a gap must still warn when read.
"""

from __future__ import annotations

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.sim.memory import Allocation, MemoryKind


def _random_slices(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[slice, ...]:
    out = []
    for d in shape:
        a = int(rng.integers(0, d))
        b = int(rng.integers(a + 1, d + 1))
        step = int(rng.choice([1, 1, 2, 3]))
        out.append(slice(a, b, step))
    return tuple(out)


@pytest.mark.parametrize("seed", range(6))
def test_count_matches_a_numpy_mask(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(2, 9)), int(rng.integers(2, 17)))
    alloc = Allocation(MemoryKind.SBUF, shape, np.dtype(np.float32), "t", 0, 0, 64, functional=True)
    ref = np.zeros(shape, dtype=bool)
    for _ in range(200):
        idx = _random_slices(rng, shape)
        ref[idx] = True
        alloc.note_written(idx, ref[idx].size, distinct=True)
        assert alloc.fully_written == bool(ref.all())
        if alloc.fully_written:
            assert alloc.written is None  # the byte-per-element mask is gone
            break
        assert alloc.written is not None and np.array_equal(alloc.written, ref)
        assert alloc.written_count == int(ref.sum())
    assert ref.all() == alloc.fully_written


def test_index_arrays_with_repeats_are_not_counted_twice() -> None:
    alloc = Allocation(MemoryKind.SBUF, (4, 8), np.dtype(np.float32), "t", 0, 0, 32, functional=True)
    rows = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    cols = np.array([0, 0, 0, 0, 0, 0, 0, 0])  # 4 distinct elements, each twice
    for _ in range(4):  # 32 index entries in all: a count would reach the allocation's size
        alloc.note_written((rows, cols), rows.size, distinct=False)
    assert not alloc.fully_written
    assert alloc.written is not None and int(alloc.written.sum()) == 4
    alloc.note_written((slice(None), slice(None)), 32, distinct=True)  # count unknown: the mask's own check
    assert alloc.fully_written


def test_an_external_mask_change_stops_the_count() -> None:
    alloc = Allocation(MemoryKind.SBUF, (2, 4), np.dtype(np.float32), "t", 0, 0, 16, functional=True)
    alloc.note_written((slice(0, 2), slice(0, 2)), 4, distinct=True)
    mask = alloc.written_mask(create=True)  # e.g. a block tensor forgetting a block's values
    assert mask is not None
    mask[0, 0] = False
    alloc.note_written((slice(0, 2), slice(2, 4)), 4, distinct=True)
    assert not alloc.fully_written  # element [0, 0] is unwritten again
    assert mask[0, 0] == False and int(mask.sum()) == 7  # noqa: E712
    alloc.note_written((slice(None), slice(None)), 8, distinct=True)  # a whole write: the mask's own check
    assert alloc.fully_written and alloc.written is None


@nki.jit
def _pieces(a, lo1, hi1, lo2, hi2):
    """Copies a's columns [lo1, hi1) and [lo2, hi2) into a tile, then the whole tile out."""
    t = nl.ndarray(a.shape, a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[:, lo1:hi1], src=a[:, lo1:hi1])
    nisa.dma_copy(dst=t[:, lo2:hi2], src=a[:, lo2:hi2])
    out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
    nisa.dma_copy(dst=out, src=t)
    return out


def test_overlapping_pieces_read_back_whole_and_a_gap_still_warns() -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((64, 96)).astype(np.float32)
    full = nki.profile(_pieces)(a, 0, 60, 30, 96)  # overlapping pieces cover every column
    assert not full.warnings
    np.testing.assert_array_equal(np.asarray(full.outputs), a)
    gap = nki.profile(_pieces)(a, 0, 40, 30, 90)  # columns 90..95 never written
    assert any("uninitialised" in w for w in gap.warnings)
    out = np.asarray(gap.outputs)
    np.testing.assert_array_equal(out[:, :90], a[:, :90])
    assert np.isnan(out[:, 90:]).all()
