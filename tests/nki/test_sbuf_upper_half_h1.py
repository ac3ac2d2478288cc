"""SBUF tiles of at most 64 partitions may start at partition 64 when they fit nowhere else.

The NKI architecture guide: the compiler's tensor allocator places a tensor of 32 < P <= 64 partitions at start
partition 0 or 64. nki-library's cross_entropy_forward keeps two [64, 65535] bf16 tiles live at once
(2 x 131,070 B > trn2's 229,376 B per partition if both start at partition 0); trnsim used to refuse it.
Kernels that fit without the upper half are placed exactly as before (it is the allocator's last resort).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import CapacityError
from trnsim.sim.memory import MemoryKind, MemorySpace

TARGET = "trn2"  # 229,376 B per partition
CHUNK = 40_000  # float32: 160,000 B per partition per tile, so two [P, CHUNK] tiles only fit side by side


@nki.jit
def chunk_exp_sums(logits):
    """Per row and chunk: sum(exp(x - max(x))) over the chunk, with the chunk and its exp in two live tiles."""
    rows, width = logits.shape
    n_chunks = width // CHUNK
    out = nl.ndarray((rows, n_chunks), dtype=nl.float32, buffer=nl.shared_hbm)
    chunk = nl.ndarray((rows, CHUNK), dtype=nl.float32, buffer=nl.sbuf)
    shifted = nl.ndarray((rows, CHUNK), dtype=nl.float32, buffer=nl.sbuf)
    row_max = nl.ndarray((rows, 1), dtype=nl.float32, buffer=nl.sbuf)
    row_sum = nl.ndarray((rows, 1), dtype=nl.float32, buffer=nl.sbuf)
    for c in range(n_chunks):
        nisa.dma_copy(dst=chunk, src=logits[:, c * CHUNK : (c + 1) * CHUNK])
        nisa.tensor_reduce(dst=row_max, op=nl.maximum, data=chunk, axis=1)
        nisa.tensor_scalar(dst=shifted, data=chunk, op0=nl.subtract, operand0=row_max)
        nisa.activation(dst=shifted, op=nl.exp, data=shifted)
        nisa.tensor_reduce(dst=row_sum, op=nl.add, data=shifted, axis=1)
        nisa.dma_copy(dst=out[:, c : c + 1], src=row_sum)
    return out


def _reference(logits: np.ndarray) -> np.ndarray:
    chunks = logits.reshape(logits.shape[0], -1, CHUNK).astype(np.float64)
    return np.exp(chunks - chunks.max(axis=2, keepdims=True)).sum(axis=2)


@pytest.mark.parametrize("spill", ["off", "compiler"])
@pytest.mark.parametrize("rows", [33, 64])
def test_two_half_tiles_that_only_fit_side_by_side(
    rows: int, spill: str, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRNSIM_SPILL", spill)
    logits = rng.standard_normal((rows, 2 * CHUNK)).astype(np.float32)
    out = nki.simulate(chunk_exp_sums, target=TARGET)(logits)
    np.testing.assert_allclose(out, _reference(logits), rtol=2e-5)


def test_more_than_64_partitions_still_do_not_fit(rng: np.random.Generator) -> None:
    logits = rng.standard_normal((65, 2 * CHUNK)).astype(np.float32)
    with pytest.raises(CapacityError, match="SBUF capacity exceeded"):
        nki.simulate(chunk_exp_sums, target=TARGET)(logits)


def _space() -> MemorySpace:
    return MemorySpace(MemoryKind.SBUF, capacity=1000)


def _alloc(space: MemorySpace, partitions: int, nbytes: int):
    return space.allocate((partitions, nbytes), np.dtype(np.uint8), "t", False, None)


def test_upper_tile_is_the_last_resort_and_other_tiles_keep_clear_of_it() -> None:
    space = _space()
    low = _alloc(space, 64, 600)
    assert low.offset == 0
    upper = _alloc(space, 64, 600)  # 600 + 600 > 1000: only at partitions 64.., over `low`'s bytes
    assert upper.offset == 0
    small = _alloc(space, 64, 100)  # fits at partition 0 after `low`: the normal placement, not the upper half
    assert small.offset == 600
    wide = _alloc(space, 128, 300)  # reaches partitions 64..: must keep clear of `upper`'s bytes [0, 600)
    assert wide.offset >= 600 and wide.offset + 300 <= 1000
    assert not (wide.offset < small.offset + 100 and small.offset < wide.offset + 300)
    with pytest.raises(CapacityError):
        _alloc(space, 64, 600)  # a second upper tile would overlap the first
    del upper
    gc.collect()
    again = _alloc(space, 64, 400)  # the upper half's bytes are free again
    assert again.offset == 0


def test_a_tile_over_128_partition_bytes_cannot_go_up() -> None:
    space = _space()
    keep = _alloc(space, 128, 600)
    with pytest.raises(CapacityError):
        _alloc(space, 64, 600)
    assert keep.offset == 0


def test_upper_tile_waits_for_the_upper_tile_whose_bytes_it_takes() -> None:
    space = _space()
    low = _alloc(space, 64, 600)
    first = _alloc(space, 64, 600)
    first_id = first.id
    del first
    gc.collect()
    second = _alloc(space, 64, 600)
    assert first_id in second.reuses
    assert low.offset == 0
