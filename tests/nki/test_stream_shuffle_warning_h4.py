"""nc_stream_shuffle reads its dst's prior values only where the mask keeps them (255).

nki-library's stream_shuffle_broadcast (core/utils/stream_shuffle_broadcast.py:38) broadcasts partition 0 of a tile
into a fresh SBUF tile with shuffle_mask [0] * 32: every output partition is overwritten. trnsim read the whole
dst as the instruction's `prior` and warned "read of uninitialised memory" for it, so `-W error` stopped there
(attention_block_tkg, seed-3 sweep) before any real uninitialised read. Values against numpy; the warning only
where a kept (255) partition was never written.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import trnsim.nki as nki
import trnsim.nki.isa as nisa
import trnsim.nki.language as nl
from trnsim.errors import UninitialisedMemoryWarning

P, F = 128, 64


def _kernel(mask: list[int], prewrite_dst: bool) -> Any:
    @nki.jit
    def shuffle(a: Any, b: Any) -> Any:
        out = nl.ndarray((P, F), dtype=a.dtype, buffer=nl.shared_hbm)
        src = nl.ndarray((P, F), dtype=a.dtype, buffer=nl.sbuf)
        dst = nl.ndarray((P, F), dtype=a.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=src, src=a)
        if prewrite_dst:
            nisa.dma_copy(dst=dst, src=b)
        for q in range(P // 32):
            nisa.nc_stream_shuffle(
                src=src[q * 32 : q * 32 + 32, :], dst=dst[q * 32 : q * 32 + 32, :], shuffle_mask=mask
            )
        nisa.dma_copy(dst=out, src=dst)
        return out

    return shuffle


def _reference(a: np.ndarray, b: np.ndarray, mask: list[int]) -> np.ndarray:
    out = b.copy()
    for i in range(P):
        if mask[i % 32] != 255:
            out[i] = a[(i // 32) * 32 + mask[i % 32]]
    return out


def _run(mask: list[int], prewrite_dst: bool, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = nki.simulate(_kernel(mask, prewrite_dst))(a, b)
    return np.asarray(out), [str(w.message) for w in caught if issubclass(w.category, UninitialisedMemoryWarning)]


@pytest.mark.parametrize("broadcast", [True, False])
def test_full_mask_into_fresh_dst_does_not_warn(broadcast: bool) -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((P, F)).astype(np.float32)
    b = rng.standard_normal((P, F)).astype(np.float32)
    mask = [0] * 32 if broadcast else [int(m) for m in rng.permutation(32)]
    out, warned = _run(mask, False, a, b)
    np.testing.assert_array_equal(out, _reference(a, b, mask))
    assert warned == []  # before: "read of uninitialised memory in tensor [128, 64] float32 in sbuf"


def test_kept_partitions_of_fresh_dst_still_warn() -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((P, F)).astype(np.float32)
    b = rng.standard_normal((P, F)).astype(np.float32)
    mask = [255 if i == 5 else int(rng.integers(32)) for i in range(32)]
    out, warned = _run(mask, False, a, b)
    assert any("read of uninitialised memory" in m for m in warned)
    written = [i for i in range(P) if i % 32 != 5]
    np.testing.assert_array_equal(out[written], _reference(a, b, mask)[written])
    assert np.isnan(out[[i for i in range(P) if i % 32 == 5]]).all()


def test_kept_partitions_keep_written_values() -> None:
    rng = np.random.default_rng()
    a = rng.standard_normal((P, F)).astype(np.float32)
    b = rng.standard_normal((P, F)).astype(np.float32)
    mask = [255 if rng.random() < 0.3 else int(rng.integers(32)) for _ in range(32)]
    out, warned = _run(mask, True, a, b)
    np.testing.assert_array_equal(out, _reference(a, b, mask))
    assert warned == []
